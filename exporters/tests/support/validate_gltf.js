// Validates a .glb with the Khronos glTF-Validator (its library API) and prints the
// report as JSON. Usage: node validate_gltf.js scene.glb (NODE_PATH holds the
// validator's node_modules).
'use strict';
const fs = require('fs');
const path = require('path');
const validator = require('gltf-validator');

const file = process.argv[2];
const bytes = new Uint8Array(fs.readFileSync(file));
validator
  .validateBytes(bytes, {
    uri: path.basename(file),
    maxIssues: 0,
    externalResourceFunction: (uri) =>
      Promise.reject(new Error(`the bundle's glTF must not refer to ${uri}`)),
  })
  .then((report) => {
    process.stdout.write(JSON.stringify(report));
  })
  .catch((error) => {
    process.stderr.write(`validation failed: ${error}\n`);
    process.exit(1);
  });
