// Checks an After Effects script: it must parse as ECMAScript 3 (what ExtendScript
// runs), and run against a mock of the AE object model. Prints JSON: what the script
// did to the mock (comps, layers, keys, markers, imports, undo groups).
// Usage: node run_ae_script.js import_scene.jsx (NODE_PATH holds acorn).
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const acorn = require('acorn');

const file = path.resolve(process.argv[2]);
const code = fs.readFileSync(file, 'utf8');
try {
  acorn.parse(code, { ecmaVersion: 3, sourceType: 'script' });
} catch (error) {
  process.stderr.write(`not ECMAScript 3: ${error.message}\n`);
  process.exit(2);
}

const record = { undo: [], comps: [], imports: [] };

function fail(message) {
  throw new Error(message);
}

// A property: keys set at times; groups answer only the match names (and English
// display names) AE has for them, so a misspelt name fails as it would in AE.
class Property {
  constructor(name, children) {
    this.name = name;
    this.keys = [];
    this.children = children || null;
  }
  property(name) {
    if (!this.children) fail(`${this.name} has no property ${name}`);
    const child = this.children[name];
    if (!child) fail(`${this.name} has no property ${JSON.stringify(name)}`);
    return child;
  }
  setValueAtTime(time, value) {
    if (this.children) fail(`${this.name} is a group: it has no value`);
    if (typeof time !== 'number' || !isFinite(time)) fail(`bad time ${time}`);
    this.keys.push([time, value]);
  }
  setValuesAtTimes(times, values) {
    if (!Array.isArray(times) || !Array.isArray(values) || times.length !== values.length) {
      fail(`${this.name}: setValuesAtTimes needs two arrays of one length`);
    }
    for (let i = 0; i < times.length; i++) this.setValueAtTime(times[i], values[i]);
  }
}

function group(name, entries) {
  const children = {};
  for (const [names, prop] of entries) for (const n of names) children[n] = prop;
  return new Property(name, children);
}

class Layer {
  constructor(kind, name, source) {
    this.kind = kind;
    this.name = name;
    this.source = source || null;
    this.autoOrient = null;
    const position = new Property('Position');
    const poi = new Property('Point of Interest');
    const zoom = new Property('Zoom');
    this.props = { position, poi, zoom };
    const transform = group('Transform', [
      [['ADBE Position', 'Position'], position],
      [['ADBE Anchor Point', kind === 'camera' ? 'Point of Interest' : 'Anchor Point'], poi],
    ]);
    const entries = [[['ADBE Transform Group', 'Transform'], transform]];
    if (kind === 'camera') {
      entries.push([['ADBE Camera Options Group', 'Camera Options'], group('Camera Options', [[['ADBE Camera Zoom', 'Zoom'], zoom]])]);
    }
    this.root = group(name, entries);
  }
  property(name) {
    return this.root.property(name);
  }
  toJSON() {
    return {
      kind: this.kind,
      name: this.name,
      source: this.source,
      autoOrient: this.autoOrient,
      position: this.props.position.keys,
      pointOfInterest: this.props.poi.keys,
      zoom: this.props.zoom.keys,
    };
  }
}

class Comp {
  constructor(name, width, height, pixelAspect, duration, frameRate) {
    for (const [k, v] of Object.entries({ width, height, pixelAspect, duration, frameRate })) {
      if (typeof v !== 'number' || !(v > 0)) fail(`addComp: bad ${k} ${v}`);
    }
    if (!Number.isInteger(width) || !Number.isInteger(height)) fail('addComp: size must be whole pixels');
    Object.assign(this, { name, width, height, pixelAspect, duration, frameRate });
    this.layerList = [];
    this.markerProperty = new Property('Marker');
    this.opened = false;
    const comp = this;
    this.layers = {
      addCamera(layerName, center) {
        if (!Array.isArray(center) || center.length !== 2) fail('addCamera: center must be [x, y]');
        const layer = new Layer('camera', layerName);
        comp.layerList.push(layer);
        return layer;
      },
      add(item) {
        if (!item || item.kind !== 'footage') fail('layers.add: not a footage item');
        const layer = new Layer('footage', item.name, item.file);
        comp.layerList.push(layer);
        return layer;
      },
    };
  }
  openInViewer() {
    this.opened = true;
  }
  toJSON() {
    return {
      name: this.name,
      width: this.width,
      height: this.height,
      pixelAspect: this.pixelAspect,
      duration: this.duration,
      frameRate: this.frameRate,
      opened: this.opened,
      layers: this.layerList,
      markers: this.markerProperty.keys.map(([t, v]) => [t, v.comment]),
    };
  }
}

class File {
  constructor(p) {
    this.fsName = path.resolve(String(p));
  }
  get parent() {
    return new Folder(path.dirname(this.fsName));
  }
  get exists() {
    return fs.existsSync(this.fsName);
  }
}
class Folder extends File {}

class ImportOptions {
  constructor(f) {
    if (!(f instanceof File)) fail('ImportOptions needs a File');
    this.file = f;
    this.sequence = false;
    this.forceAlphabetical = false;
  }
}

function MarkerValue(comment) {
  if (!(this instanceof MarkerValue)) fail('MarkerValue needs new');
  this.comment = comment;
}

const app = {
  beginUndoGroup(name) {
    record.undo.push(`begin ${name}`);
  },
  endUndoGroup() {
    record.undo.push('end');
  },
  project: {
    items: {
      addComp(...args) {
        if (args.length !== 6) fail(`addComp takes 6 arguments, got ${args.length}`);
        const comp = new Comp(...args);
        record.comps.push(comp);
        return comp;
      },
    },
    importFile(options) {
      if (!(options instanceof ImportOptions)) fail('importFile needs ImportOptions');
      if (!options.file.exists) fail(`importFile: no such file ${options.file.fsName}`);
      const item = {
        kind: 'footage',
        name: path.basename(options.file.fsName),
        file: options.file.fsName,
        sequence: options.sequence,
        forceAlphabetical: options.forceAlphabetical,
        mainSource: { conformFrameRate: 0 },
      };
      record.imports.push(item);
      return item;
    },
  },
};

const sandbox = {
  app,
  File,
  Folder,
  ImportOptions,
  MarkerValue,
  AutoOrientType: { NO_AUTO_ORIENT: 'none', ALONG_PATH: 'path', CAMERA_OR_POINT_OF_INTEREST: 'poi' },
  $: { fileName: file },
};
vm.runInNewContext(code, sandbox, { filename: file });
process.stdout.write(
  JSON.stringify({
    undo: record.undo,
    comps: record.comps,
    imports: record.imports.map((i) => ({
      file: i.file,
      sequence: i.sequence,
      forceAlphabetical: i.forceAlphabetical,
      conformFrameRate: i.mainSource.conformFrameRate,
    })),
  })
);
