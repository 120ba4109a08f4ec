/**
 * The model manifest `model.json` beside an `.onnx` file (format `medmask-model/1`; documented in
 * docs/model-manifest.md): what the model expects as input, how images are preprocessed, what the
 * outputs mean, where the CAM target is, the dropout rate for Monte Carlo Dropout.
 *
 * - {@link validateManifest} checks a parsed manifest against {@link MANIFEST_SCHEMA}; every error
 *   names the field path and suggests the intended key or value for typos.
 * - {@link resolveModel} loads a model by its manifest path, by its `.onnx` path (a manifest
 *   beside it — `<name>.json` or a `model.json` that names it — is found automatically), or by its
 *   folder; a bare `.onnx` works with defaults taken from the graph.
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { CAM_METHODS, type CamMethod } from '../core/explain/cam.js';
import type { IntensitySpec, PreprocessSpec } from '../core/preprocess.js';
import { formatIssue, validateSchema, type ObjectSchema, type Schema, type SchemaIssue } from '../core/schema.js';
import { decodeOnnx, graphSignature, type GraphSignature } from './onnx-graph.js';

/** The manifest format this version reads. */
export const MANIFEST_FORMAT = 'medmask-model/1';

/** Output activation: `softmax` (one class per image), `sigmoid` (multi-label), `none` (already probabilities). */
export type OutputActivation = 'softmax' | 'sigmoid' | 'none';

/** Manifest of a 2D classifier. */
export interface ClassifierManifest {
  format: typeof MANIFEST_FORMAT;
  name: string;
  task: 'classify';
  /** The `.onnx` file, relative to the manifest. */
  model: string;
  description?: string;
  version?: string;
  input: { name?: string; layout?: 'NCHW'; height: number; width: number; channels: number };
  preprocess?: PreprocessSpec;
  output?: { name?: string; activation?: OutputActivation };
  /** Class names in output order. */
  classes: string[];
  cam?: { target?: string; method?: CamMethod };
  /** Head MC Dropout: rate, default T, and optionally the tensor dropped out (default: the classifier input). */
  mc?: { dropout: number; samples?: number; site?: string };
}

/** Manifest of a 3D segmenter. */
export interface SegmenterManifest {
  format: typeof MANIFEST_FORMAT;
  name: string;
  task: 'segment';
  model: string;
  description?: string;
  version?: string;
  /** `patch` as [x, y, z]; tensor dims are [N, C, z, y, x]. */
  input: { name?: string; layout?: 'NCDHW'; patch: [number, number, number]; channels: number };
  /** Voxel spacing the model was trained at, mm, x y z. */
  spacing?: [number, number, number];
  preprocess?: { intensity?: IntensitySpec };
  output?: { name?: string; activation?: 'softmax' | 'sigmoid' };
  /** Label value → name. */
  labels: Record<string, string>;
  /** Sliding-window options. */
  window?: { overlap?: number; batch?: number };
}

/** Either manifest. */
export type ModelManifest = ClassifierManifest | SegmenterManifest;

// ---------------------------------------------------------------------------------------------
// schema

const str: Schema = { type: 'string', minLength: 1 };
const posInt: Schema = { type: 'integer', minimum: 1 };
const num: Schema = { type: 'number' };

const intensity: Schema = {
  type: 'tagged',
  tag: 'mode',
  description: 'intensity normalisation',
  variants: {
    'mean-std': {
      type: 'object',
      properties: {
        mode: str,
        mean: { type: 'array', items: num, minItems: 1, description: 'one value, or one per channel' },
        std: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 1, description: 'one value, or one per channel' },
        scale: { type: 'number', exclusiveMinimum: 0, description: 'divide raw values by this first, e.g. 255' },
      },
      required: ['mean', 'std'],
    },
    'min-max': { type: 'object', properties: { mode: str } },
    'ct-window': {
      type: 'object',
      properties: { mode: str, center: { ...num, description: 'window centre (HU)' }, width: { type: 'number', exclusiveMinimum: 0, description: 'window width (HU)' } },
      required: ['center', 'width'],
    },
    none: { type: 'object', properties: { mode: str } },
  },
};

const common = {
  format: { type: 'string', const: MANIFEST_FORMAT, description: `"${MANIFEST_FORMAT}"` },
  name: { ...str, maxLength: 200, description: 'model name' },
  task: str,
  model: { ...str, maxLength: 1024, description: 'the .onnx file, relative to the manifest' },
  description: { type: 'string' },
  version: { type: 'string' },
  card: { type: 'string', description: 'model card file, relative to the manifest' },
} satisfies Record<string, Schema>;

const classifier: ObjectSchema = {
  type: 'object',
  properties: {
    ...common,
    input: {
      type: 'object',
      properties: {
        name: str,
        layout: { type: 'string', enum: ['NCHW'] },
        height: posInt,
        width: posInt,
        channels: { type: 'integer', minimum: 1, maximum: 4 },
      },
      required: ['height', 'width', 'channels'],
    },
    preprocess: {
      type: 'object',
      properties: {
        resize: { type: 'string', enum: ['stretch', 'letterbox'] },
        channels: { type: 'string', enum: ['auto', 'grey-to-rgb', 'keep', 'rgb-to-grey'] },
        intensity,
        pad: { type: 'anyOf', anyOf: [num, { type: 'string', enum: ['min'] }] },
        antialias: { type: 'boolean' },
      },
    },
    output: { type: 'object', properties: { name: str, activation: { type: 'string', enum: ['softmax', 'sigmoid', 'none'] } } },
    classes: { type: 'array', items: str, minItems: 1, uniqueItems: true, description: 'class names in output order' },
    cam: { type: 'object', properties: { target: str, method: { type: 'string', enum: CAM_METHODS } } },
    mc: {
      type: 'object',
      properties: {
        dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, description: 'head MC dropout rate' },
        samples: { type: 'integer', minimum: 1, maximum: 10_000 },
        site: str,
      },
      required: ['dropout'],
    },
  },
  required: ['format', 'name', 'task', 'model', 'input', 'classes'],
};

const segmenter: ObjectSchema = {
  type: 'object',
  properties: {
    ...common,
    input: {
      type: 'object',
      properties: {
        name: str,
        layout: { type: 'string', enum: ['NCDHW'] },
        patch: { type: 'array', items: posInt, minItems: 3, maxItems: 3, description: 'patch size [x, y, z]' },
        channels: posInt,
      },
      required: ['patch', 'channels'],
    },
    spacing: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 3, maxItems: 3 },
    preprocess: { type: 'object', properties: { intensity } },
    output: { type: 'object', properties: { name: str, activation: { type: 'string', enum: ['softmax', 'sigmoid'] } } },
    labels: { type: 'map', values: str, keyPattern: /^[1-9]\d*$/, keyDescription: 'a label value (a whole number ≥ 1, as a string)', minProperties: 1 },
    window: {
      type: 'object',
      properties: { overlap: { type: 'number', minimum: 0, exclusiveMaximum: 1 }, batch: posInt },
    },
  },
  required: ['format', 'name', 'task', 'model', 'input', 'labels'],
};

/** The manifest schema: a classifier or a segmenter, told apart by `task`. */
export const MANIFEST_SCHEMA: Schema = { type: 'tagged', tag: 'task', variants: { classify: classifier, segment: segmenter } };

/**
 * Validate a parsed manifest.
 * @param value - the parsed JSON
 * @param source - file name for messages (default `model.json`)
 * @returns the manifest, typed
 * @throws MedmaskError MODEL_INVALID listing every problem as `source: field.path: message (did you mean …?)`
 * @example
 * validateManifest({ format: 'medmask-model/1', task: 'classify', … }, 'models/demo/model.json');
 */
export function validateManifest(value: unknown, source = 'model.json'): ModelManifest {
  const issues: SchemaIssue[] = validateSchema(MANIFEST_SCHEMA, value);
  if (!issues.length && (value as ModelManifest).task === 'classify') {
    const m = value as ClassifierManifest;
    const int = m.preprocess?.intensity;
    if (int?.mode === 'mean-std') {
      for (const f of ['mean', 'std'] as const) {
        if (int[f].length !== 1 && int[f].length !== m.input.channels) {
          issues.push({ path: `preprocess.intensity.${f}`, message: `has ${int[f].length} values; input.channels is ${m.input.channels} (give 1 or ${m.input.channels})` });
        }
      }
    }
  }
  if (issues.length) {
    const lines = issues.map((i) => `${source}: ${formatIssue(i)}`);
    throw new MedmaskError('MODEL_INVALID', lines.length === 1 ? lines[0]! : `${source} has ${lines.length} problems:\n  ${lines.join('\n  ')}`, {
      hint: 'see docs/model-manifest.md for the format',
      details: { issues },
    });
  }
  return value as ModelManifest;
}

/**
 * Read and validate a manifest file.
 * @param path - the `.json` file
 * @returns the manifest
 * @throws MedmaskError NOT_FOUND, MODEL_INVALID (bad JSON: with line and column; bad fields)
 * @example
 * const m = await readManifest('models/demo/resnet/model.json');
 */
export async function readManifest(path: string): Promise<ModelManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `cannot read manifest ${path}: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  // A UTF-8 byte order mark (Windows editors write one) is not part of the JSON.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    json = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    let where = '';
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split('\n').length;
      where = ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
    }
    throw new MedmaskError('MODEL_INVALID', `${path}: not valid JSON${where} (${msg})`, { cause: e, hint: 'comments and trailing commas are not allowed in JSON' });
  }
  return validateManifest(json, path);
}

// ---------------------------------------------------------------------------------------------
// loading

/** A model found on disk. */
export interface ResolvedModel {
  /** The classifier manifest (from the file, or defaults from the graph). */
  manifest: ClassifierManifest;
  /** The `.onnx` file. */
  onnxPath: string;
  /** The manifest file, when there is one. */
  manifestPath?: string;
  /** The `.onnx` bytes (read once; pass them on to the session). */
  bytes: Uint8Array;
  /** The graph's inputs and outputs. */
  signature: GraphSignature;
  /** Fields that came from defaults rather than a manifest, for the user to see. */
  defaults: string[];
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `cannot read model ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The manifest beside an `.onnx` file: `<name>.json`, else a `model.json` whose `model` field
 * names this file.
 * @param onnxPath - the `.onnx` file
 * @returns the manifest path, or undefined
 * @example
 * findManifest('models/demo/resnet/model.onnx'); // 'models/demo/resnet/model.json'
 */
export async function findManifest(onnxPath: string): Promise<string | undefined> {
  const dir = dirname(onnxPath);
  const own = join(dir, `${basename(onnxPath, extname(onnxPath))}.json`);
  if (existsSync(own)) return own;
  const shared = join(dir, 'model.json');
  if (existsSync(shared)) {
    try {
      const m = JSON.parse(await readFile(shared, 'utf8')) as { model?: unknown };
      if (typeof m.model === 'string' && resolve(dir, m.model) === resolve(onnxPath)) return shared;
    } catch {
      /* a model.json for something else, or broken: not this model's manifest */
    }
  }
  return undefined;
}

/**
 * A classifier manifest made from the graph alone: input name and size from the first input
 * (which must have fixed height and width), class names `class_0…` from the output size, stretch
 * resize, channels `auto`, per-image min-max intensity, no MC rate (the caller decides).
 * @param sig - the graph signature
 * @param source - the `.onnx` path
 * @returns the manifest and the fields defaulted
 * @throws MedmaskError MODEL_INVALID when the input is not NCHW with a fixed size
 * @example
 * const { manifest } = manifestFromGraph(graphSignature(model), 'm.onnx');
 */
export function manifestFromGraph(sig: GraphSignature, source: string): { manifest: ClassifierManifest; defaults: string[] } {
  const inp = sig.inputs[0];
  const dims = inp?.dims ?? [];
  const [, c, h, w] = dims;
  if (!inp || dims.length !== 4 || typeof c !== 'number' || typeof h !== 'number' || typeof w !== 'number' || !(c > 0 && h > 0 && w > 0)) {
    throw new MedmaskError('MODEL_INVALID', `${source}: the input ${inp ? `"${inp.name}" [${dims.join(', ')}]` : '(none)'} has no fixed NCHW size, and no manifest says which size to use`, {
      hint: `write a manifest beside the model (${basename(source, extname(source))}.json, see docs/model-manifest.md) with input.height, input.width and input.channels`,
    });
  }
  const out = sig.outputs[0];
  const n = out?.dims[out.dims.length - 1];
  const classes = typeof n === 'number' && n > 0 ? Array.from({ length: n }, (_, i) => `class_${i}`) : [];
  return {
    manifest: {
      format: MANIFEST_FORMAT,
      name: basename(source, extname(source)),
      task: 'classify',
      model: basename(source),
      input: { name: inp.name, layout: 'NCHW', height: h, width: w, channels: c },
      preprocess: { resize: 'stretch', channels: 'auto', intensity: { mode: 'min-max' } },
      output: { activation: 'softmax' },
      classes,
    },
    defaults: ['input (from the graph)', 'classes (class_0…)', 'preprocess (stretch, min-max)', 'output.activation (softmax)'],
  };
}

function checkAgainstGraph(m: ClassifierManifest, sig: GraphSignature, source: string): void {
  const inName = m.input.name ?? sig.inputs[0]?.name;
  const inp = sig.inputs.find((i) => i.name === inName);
  if (!inp) {
    throw new MedmaskError('MODEL_INVALID', `${source}: input.name: "${inName}" is not an input of the graph (inputs: ${sig.inputs.map((i) => i.name).join(', ')})`);
  }
  const want = [m.input.channels, m.input.height, m.input.width];
  const names = ['channels', 'height', 'width'];
  if (inp.dims.length && inp.dims.length !== 4) {
    throw new MedmaskError('MODEL_INVALID', `${source}: the graph input "${inp.name}" has ${inp.dims.length} dimensions [${inp.dims.join(', ')}]; a 2D classifier takes NCHW`);
  }
  inp.dims.slice(1).forEach((d, i) => {
    if (typeof d === 'number' && d > 0 && d !== want[i]) {
      throw new MedmaskError('MODEL_INVALID', `${source}: input.${names[i]}: the manifest says ${want[i]}, the graph input "${inp.name}" has ${d} ([${inp.dims.join(', ')}])`, {
        hint: `set input.${names[i]} to ${d} in the manifest`,
      });
    }
  });
  const outName = m.output?.name ?? sig.outputs[0]?.name;
  const out = sig.outputs.find((o) => o.name === outName);
  if (!out) {
    throw new MedmaskError('MODEL_INVALID', `${source}: output.name: "${outName}" is not an output of the graph (outputs: ${sig.outputs.map((o) => o.name).join(', ')})`);
  }
  const n = out.dims[out.dims.length - 1];
  if (typeof n === 'number' && n > 0 && n !== m.classes.length) {
    throw new MedmaskError('MODEL_INVALID', `${source}: classes: the manifest names ${m.classes.length} classes, the graph output "${out.name}" has ${n}`, {
      hint: `list ${n} class names, in output order`,
    });
  }
}

/**
 * Find and load a classifier: by its manifest (`.json`), its `.onnx` file (the manifest beside it
 * is found; a bare `.onnx` gets defaults from the graph), or a folder holding `model.json`.
 * The manifest is checked against the graph (input name and size, number of classes).
 * @param path - `.json`, `.onnx` or a folder
 * @returns manifest, paths, bytes and graph signature
 * @throws MedmaskError NOT_FOUND, MODEL_INVALID (bad manifest, corrupt `.onnx`, manifest and graph
 *   disagree, a segmenter given where a classifier is needed)
 * @example
 * const m = await resolveModel('models/demo/resnet.onnx'); m.manifest.classes;
 */
export async function resolveModel(path: string): Promise<ResolvedModel> {
  if (!existsSync(path)) throw new MedmaskError('NOT_FOUND', `model ${path} does not exist`, { hint: 'give an .onnx file, its model.json, or the folder holding them' });
  let manifestPath: string | undefined;
  let onnxPath: string;
  if (statSync(path).isDirectory()) {
    manifestPath = join(path, 'model.json');
    if (!existsSync(manifestPath)) {
      throw new MedmaskError('NOT_FOUND', `${path} is a folder without model.json`, { hint: 'give the .onnx file or its manifest' });
    }
  } else if (extname(path).toLowerCase() === '.json') manifestPath = path;
  else manifestPath = await findManifest(path);
  let manifest: ClassifierManifest;
  let defaults: string[] = [];
  if (manifestPath) {
    const m = await readManifest(manifestPath);
    if (m.task !== 'classify') {
      throw new MedmaskError('MODEL_INVALID', `${manifestPath}: task is "${m.task}"; this command needs a classifier (task "classify")`);
    }
    manifest = m;
    onnxPath = resolve(dirname(manifestPath), m.model);
    if (manifestPath !== path && extname(path).toLowerCase() === '.onnx') onnxPath = path;
    if (!existsSync(onnxPath)) {
      throw new MedmaskError('NOT_FOUND', `${manifestPath}: model: "${m.model}" does not exist (${onnxPath})`, { hint: 'the path is relative to the manifest' });
    }
  } else onnxPath = path;
  const bytes = await readBytes(onnxPath);
  const signature = graphSignature(decodeOnnx(bytes, onnxPath));
  if (manifestPath) checkAgainstGraph(manifest!, signature, manifestPath);
  else ({ manifest, defaults } = manifestFromGraph(signature, onnxPath));
  return { manifest: manifest!, onnxPath, ...(manifestPath ? { manifestPath } : {}), bytes, signature, defaults };
}
