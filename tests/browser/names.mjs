// Every name the control surface's modules use is declared in the module or imported
// into it (or is the browser's own): a name one module uses from another without
// importing it would fail only when that code runs, so it is found here, read with the
// same parser browsers' tools use (acorn), before any browser runs the page.
//
// node tests/browser/names.mjs DIR... (each folder's .js files); exits 1 naming them.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import { join } from 'node:path';

const require = createRequire(process.env.CUECAST_NODE_TOOLS + '/');
const acorn = require('acorn');
const files = process.argv.slice(2).flatMap((dir) => fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => join(dir, f)));
const globals = new Set(Object.getOwnPropertyNames(globalThis).concat(['window', 'document', 'sessionStorage', 'navigator', 'requestAnimationFrame', 'cancelAnimationFrame', 'EventSource', 'fetch', 'Image', 'FormData', 'HTMLElement', 'location', 'performance', 'alert', 'confirm', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL', 'Blob', 'File', 'Response', 'Headers', 'AbortController', 'getComputedStyle', 'undefined', 'arguments', 'localStorage', 'matchMedia', 'structuredClone', 'queueMicrotask', 'TextDecoder', 'TextEncoder',
  'HTMLInputElement', 'HTMLTextAreaElement', 'HTMLSelectElement', 'HTMLButtonElement']));
let bad = 0;
for (const f of files) {
  const ast = acorn.parse(fs.readFileSync(f, 'utf8'), { ecmaVersion: 'latest', sourceType: 'module' });
  const declared = new Set();
  const used = new Set();
  const pat = (p) => {
    if (!p) return;
    if (p.type === 'Identifier') declared.add(p.name);
    else if (p.type === 'ObjectPattern') p.properties.forEach((q) => pat(q.type === 'RestElement' ? q.argument : q.value));
    else if (p.type === 'ArrayPattern') p.elements.forEach(pat);
    else if (p.type === 'AssignmentPattern') pat(p.left);
    else if (p.type === 'RestElement') pat(p.argument);
  };
  const walk = (n, parent, key) => {
    if (!n || typeof n.type !== 'string') return;
    switch (n.type) {
      case 'ImportSpecifier': case 'ImportDefaultSpecifier': case 'ImportNamespaceSpecifier': declared.add(n.local.name); return;
      case 'VariableDeclarator': pat(n.id); break;
      case 'FunctionDeclaration': case 'FunctionExpression': case 'ArrowFunctionExpression':
        if (n.id) declared.add(n.id.name); n.params.forEach(pat); break;
      case 'ClassDeclaration': if (n.id) declared.add(n.id.name); break;
      case 'CatchClause': pat(n.param); break;
      case 'Identifier':
        if (parent && parent.type === 'MemberExpression' && key === 'property' && !parent.computed) return;
        if (parent && parent.type === 'Property' && key === 'key' && !parent.computed) return;
        if (parent && parent.type === 'MethodDefinition' && key === 'key') return;
        if (parent && (parent.type === 'LabeledStatement' || parent.type === 'BreakStatement' || parent.type === 'ContinueStatement')) return;
        used.add(n.name); return;
    }
    for (const k of Object.keys(n)) {
      const v = n[k];
      if (Array.isArray(v)) v.forEach((c) => walk(c, n, k));
      else if (v && typeof v.type === 'string') walk(v, n, k);
    }
  };
  walk(ast, null, null);
  const missing = [...used].filter((u) => !declared.has(u) && !globals.has(u));
  if (missing.length) {
    bad++;
    console.log(`${f}: ${missing.join(', ')} declared nowhere and not imported`);
  }
}
if (!files.length) throw new Error('no .js files given');
console.log(`${files.length} modules: ${bad ? `${bad} with unresolved names` : 'every name resolves'}`);
process.exit(bad ? 1 : 0);
