/**
 * ONNX graph reading and editing with `onnx-proto` (protobuf): decode / encode a model, find the
 * candidate CAM target tensors and the default one, add a tensor as an extra graph output, and read
 * the **head** (the nodes from the target tensor to the logits, with their constants) into the
 * plain {@link HeadDescription} that `src/core/explain/head.ts` evaluates and differentiates.
 * @module
 */
import pkg from 'onnx-proto';
import { MedmaskError } from '../core/errors.js';
import type { HeadAttr, HeadConstant, HeadDescription, HeadNodeDesc } from '../core/explain/head.js';

const { onnx } = pkg;

/** A decoded ONNX model (protobuf message). */
export type OnnxModel = InstanceType<typeof onnx.ModelProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
type AttributeProto = InstanceType<typeof onnx.AttributeProto>;
type LongLike = number | { toNumber(): number };

const num = (v: LongLike | null | undefined): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());

/**
 * Decode an `.onnx` file's bytes.
 * @param bytes - file contents
 * @param source - file name for messages
 * @returns the model
 * @throws MedmaskError MODEL_INVALID when the bytes are not an ONNX model with a graph
 * @example
 * const model = decodeOnnx(readFileSync('m.onnx'), 'm.onnx');
 */
export function decodeOnnx(bytes: Uint8Array, source = 'model'): OnnxModel {
  let model: OnnxModel;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new MedmaskError('MODEL_INVALID', `${source}: not a readable ONNX model (${(e as Error).message})`, {
      cause: e,
      hint: 'the file may be truncated or not an .onnx file; export it again (torch.onnx.export)',
    });
  }
  if (!model.graph || !model.graph.node?.length) {
    throw new MedmaskError('MODEL_INVALID', `${source}: the ONNX model has no graph nodes`, { hint: 'export the model again' });
  }
  return model;
}

/**
 * Encode a model back to bytes.
 * @param model - a decoded (possibly edited) model
 * @returns protobuf bytes
 * @example
 * const bytes = encodeOnnx(addGraphOutputs(model, ['/layer4/Relu_output_0']));
 */
export function encodeOnnx(model: OnnxModel): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Values of a TensorProto (float, double, int32/64, uint8/int8 …; raw little-endian or typed fields).
 * @param t - the tensor
 * @returns dims and values as numbers
 * @example
 * const { dims, data } = tensorValues(initializer);
 */
export function tensorValues(t: TensorProto): HeadConstant {
  const dims = (t.dims ?? []).map(num);
  const n = dims.reduce((a, b) => a * b, 1);
  const DT = onnx.TensorProto.DataType;
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  const read = (bytes: number, get: (o: number) => number): number[] => Array.from({ length: n }, (_, i) => get(i * bytes));
  switch (t.dataType) {
    case DT.FLOAT:
      return { dims, data: view ? Float32Array.from(read(4, (o) => view.getFloat32(o, true))) : Float32Array.from(t.floatData ?? []) };
    case DT.DOUBLE:
      return { dims, data: view ? read(8, (o) => view.getFloat64(o, true)) : [...(t.doubleData ?? [])] };
    case DT.INT64:
      return { dims, data: view ? read(8, (o) => Number(view.getBigInt64(o, true))) : (t.int64Data ?? []).map(num) };
    case DT.INT32:
      return { dims, data: view ? read(4, (o) => view.getInt32(o, true)) : [...(t.int32Data ?? [])] };
    case DT.UINT8:
    case DT.BOOL:
      return { dims, data: view ? read(1, (o) => view.getUint8(o)) : [...(t.int32Data ?? [])] };
    case DT.INT8:
      return { dims, data: view ? read(1, (o) => view.getInt8(o)) : [...(t.int32Data ?? [])] };
    default:
      throw new MedmaskError('MODEL_INVALID', `tensor "${t.name}" has ONNX data type ${t.dataType}, which the head evaluator does not read`, {
        hint: 'export the classifier head in float32',
      });
  }
}

function attrValue(a: AttributeProto): HeadAttr | undefined {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.FLOAT: return a.f ?? 0;
    case T.INT: return num(a.i as LongLike);
    case T.STRING: return new TextDecoder().decode(a.s);
    case T.FLOATS: return [...(a.floats ?? [])];
    case T.INTS: return (a.ints ?? []).map((v) => num(v as LongLike));
    default: return undefined;
  }
}

/**
 * Attributes of a node as plain values (tensor / graph attributes are left out).
 * @param node - an ONNX node
 * @returns name → value
 * @example
 * nodeAttributes(gemm); // { alpha: 1, beta: 1, transB: 1 }
 */
export function nodeAttributes(node: NodeProto): Record<string, HeadAttr> {
  const out: Record<string, HeadAttr> = {};
  for (const a of node.attribute as AttributeProto[]) {
    const v = attrValue(a);
    if (v !== undefined) out[a.name] = v;
  }
  return out;
}

function constantNodeValue(node: NodeProto): HeadConstant {
  for (const a of node.attribute as AttributeProto[]) {
    if (a.name === 'value' && a.t) return tensorValues(a.t as TensorProto);
    if (a.name === 'value_float') return { dims: [], data: [a.f] };
    if (a.name === 'value_floats') return { dims: [a.floats.length], data: [...a.floats] };
    if (a.name === 'value_int') return { dims: [], data: [num(a.i as LongLike)] };
    if (a.name === 'value_ints') return { dims: [a.ints.length], data: a.ints.map((v) => num(v as LongLike)) };
  }
  throw new MedmaskError('MODEL_INVALID', `Constant node "${node.name}" has no value the head evaluator can read`);
}

interface GraphIndex {
  nodes: NodeProto[];
  producer: Map<string, number>;
  consumers: Map<string, number[]>;
  initializers: Map<string, TensorProto>;
  inputs: Set<string>;
  outputs: string[];
}

function indexGraph(model: OnnxModel): GraphIndex {
  const g = model.graph!;
  const nodes = g.node as NodeProto[];
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  nodes.forEach((n, i) => {
    for (const o of n.output) producer.set(o, i);
    for (const x of n.input) {
      if (!consumers.has(x)) consumers.set(x, []);
      consumers.get(x)!.push(i);
    }
  });
  const initializers = new Map<string, TensorProto>((g.initializer as TensorProto[]).map((t) => [t.name, t]));
  const inputs = new Set((g.input ?? []).map((i) => i.name ?? '').filter((n) => !initializers.has(n)));
  return { nodes, producer, consumers, initializers, inputs, outputs: (g.output ?? []).map((o) => o.name ?? '') };
}

const ACTIVATIONS = new Set(['Relu', 'LeakyRelu', 'Clip', 'Elu', 'Selu', 'HardSigmoid', 'HardSwish', 'Sigmoid', 'Tanh', 'Softplus']);
const POOLS = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean', 'ReduceMax']);

/** A tensor that could serve as the CAM target: a 4-D activation feeding a global spatial pooling. */
export interface TargetCandidate {
  /** The tensor name to use as target. */
  tensor: string;
  /** Op and name of the node producing it. */
  producer: { op: string; name: string };
  /** The pooling node it (or the activation after it) feeds. */
  pooling: { op: string; name: string };
  /** The tensor feeding the pooling node (differs from `tensor` for a pre-activation candidate). */
  pooledInput: string;
  /**
   * Pointwise activations between `tensor` and the pooling, in graph order: empty for the tensor
   * that feeds the pooling directly, e.g. `['Relu']` for DenseNet's norm5 output.
   */
  activations: string[];
}

function isSpatialPool(ix: GraphIndex, node: NodeProto): boolean {
  if (!POOLS.has(node.opType)) return false;
  if (node.opType.startsWith('Global')) return true;
  let axes = nodeAttributes(node).axes as number[] | number | undefined;
  if (axes === undefined && node.input[1]) {
    const t = ix.initializers.get(node.input[1]);
    const p = ix.producer.get(node.input[1]);
    if (t) axes = tensorValues(t).data as number[];
    else if (p !== undefined && ix.nodes[p]!.opType === 'Constant') axes = [...constantNodeValue(ix.nodes[p]!).data];
  }
  const a = (Array.isArray(axes) ? axes : axes === undefined ? [] : [axes]).map((v) => (v < 0 ? v + 4 : v)).sort();
  return a.length === 2 && a[0] === 2 && a[1] === 3;
}

/**
 * Candidate CAM targets, in graph order of their pooling nodes: every tensor that feeds a global
 * spatial pooling (GlobalAveragePool, GlobalMaxPool, ReduceMean/ReduceMax over axes 2, 3) — the
 * activation exactly as the classifier pools it — followed by the tensors before the pointwise
 * activations that produce it (pre-activation candidates: DenseNet's norm5 BatchNormalization
 * output before the functional ReLU of its `forward`, a ResNet block's Add before its ReLU).
 * @param model - a decoded model
 * @returns the candidates; the default target ({@link defaultTarget}) is a pooling's first one
 * @example
 * findTargetCandidates(model).map((c) => c.tensor);
 */
export function findTargetCandidates(model: OnnxModel): TargetCandidate[] {
  const ix = indexGraph(model);
  const out: TargetCandidate[] = [];
  const seen = new Set<string>();
  for (const node of ix.nodes) {
    if (!isSpatialPool(ix, node)) continue;
    const pooledInput = node.input[0]!;
    const pooling = { op: node.opType, name: node.name };
    let tensor = pooledInput;
    const activations: string[] = [];
    for (let depth = 0; depth < 8; depth++) {
      const p = ix.producer.get(tensor);
      const prod = p === undefined ? undefined : ix.nodes[p];
      if (!seen.has(tensor)) {
        seen.add(tensor);
        out.push({ tensor, producer: { op: prod?.opType ?? 'graph input', name: prod?.name ?? tensor }, pooling, pooledInput, activations: [...activations] });
      }
      // step back over a pointwise activation: its input is a pre-activation candidate
      if (!prod || !ACTIVATIONS.has(prod.opType) || !prod.input[0] || !ix.producer.has(prod.input[0])) break;
      activations.unshift(prod.opType);
      tensor = prod.input[0];
    }
  }
  return out;
}

/**
 * The default CAM target: the tensor that feeds the last global pooling that reaches the logits,
 * i.e. the activation exactly as the classifier sees it (DenseNet: the output of the ReLU after
 * norm5 — what pytorch-grad-cam records at `features[-1]` on the CPU, where the in-place ReLU of
 * torchvision's `forward` overwrites the hooked tensor; ResNet: `layer4[-1]`'s output;
 * EfficientNet: `features[-1]`'s output). Pre-activation tensors stay available as
 * {@link findTargetCandidates} (manifest `cam.target`, `--target`).
 * @param model - a decoded model
 * @param output - the logits output name (default: the graph's first output)
 * @returns the tensor name
 * @throws MedmaskError MODEL_INVALID when the graph has no pooled 4-D activation
 * @example
 * const target = defaultTarget(model); // e.g. "/layer4/layer4.0/relu_2/Relu_output_0"
 */
export function defaultTarget(model: OnnxModel, output?: string): string {
  const ix = indexGraph(model);
  const out = output ?? ix.outputs[0]!;
  const cands = findTargetCandidates(model).filter((c) => c.activations.length === 0);
  for (let i = cands.length - 1; i >= 0; i--) {
    if (reaches(ix, cands[i]!.tensor, out)) return cands[i]!.tensor;
  }
  throw new MedmaskError('MODEL_INVALID', `no pooled 4-D activation found before "${out}": the graph has no GlobalAveragePool / GlobalMaxPool / ReduceMean over H, W`, {
    hint: 'name the CAM target tensor explicitly (manifest field cam.target or --target); `medmask model inspect` lists tensors',
  });
}

function downstream(ix: GraphIndex, from: string): Set<number> {
  const seen = new Set<number>();
  const stack = [...(ix.consumers.get(from) ?? [])];
  while (stack.length) {
    const i = stack.pop()!;
    if (seen.has(i)) continue;
    seen.add(i);
    for (const o of ix.nodes[i]!.output) stack.push(...(ix.consumers.get(o) ?? []));
  }
  return seen;
}

function reaches(ix: GraphIndex, from: string, to: string): boolean {
  const p = ix.producer.get(to);
  return p !== undefined && downstream(ix, from).has(p);
}

/** The value of a tensor that is an initialiser or Constant seen through a chain of Identity nodes. */
function identityConstant(ix: GraphIndex, tensor: string, depth = 0): HeadConstant | undefined {
  const init = ix.initializers.get(tensor);
  if (init) return tensorValues(init);
  const p = ix.producer.get(tensor);
  if (p === undefined || depth > 16) return undefined;
  const node = ix.nodes[p]!;
  if (node.opType === 'Constant') return constantNodeValue(node);
  if (node.opType === 'Identity' && node.input[0]) return identityConstant(ix, node.input[0], depth + 1);
  return undefined;
}

/**
 * Read the head: every node on a path from `target` to `output`, with the constants they read.
 * @param model - a decoded model
 * @param target - the target tensor name
 * @param output - the logits output (default: the graph's first output)
 * @returns a plain description for `compileHead`
 * @throws MedmaskError MODEL_INVALID when the tensor is unknown, the logits do not depend on it, or
 *   a head node also reads a tensor not computed from the target (e.g. a skip connection around it)
 * @example
 * const head = compileHead(extractHead(model, defaultTarget(model)));
 */
export function extractHead(model: OnnxModel, target: string, output?: string): HeadDescription {
  const ix = indexGraph(model);
  const out = output ?? ix.outputs[0]!;
  if (!ix.producer.has(target) && !ix.inputs.has(target)) {
    throw new MedmaskError('MODEL_INVALID', `tensor "${target}" is not in the graph`, {
      hint: 'run `medmask model inspect MODEL.onnx` to list candidate target tensors',
    });
  }
  if (!ix.outputs.includes(out)) {
    throw new MedmaskError('MODEL_INVALID', `"${out}" is not an output of the graph (outputs: ${ix.outputs.join(', ')})`);
  }
  const down = downstream(ix, target);
  if (!down.has(ix.producer.get(out)!)) {
    throw new MedmaskError('MODEL_INVALID', `the output "${out}" does not depend on the target tensor "${target}"`);
  }
  const keep = new Set<number>();
  const constants: Record<string, HeadConstant> = {};
  const visit = (tensor: string, reader: NodeProto): void => {
    if (tensor === '' || tensor === target || constants[tensor]) return;
    const init = ix.initializers.get(tensor);
    if (init) {
      constants[tensor] = tensorValues(init);
      return;
    }
    const p = ix.producer.get(tensor);
    if (p === undefined) {
      throw new MedmaskError('MODEL_INVALID', `head node "${reader.name}" (${reader.opType}) reads the graph input "${tensor}" directly`, {
        hint: `the head after "${target}" must depend only on that tensor; choose a later target tensor`,
      });
    }
    const node = ix.nodes[p]!;
    if (node.opType === 'Constant') {
      constants[tensor] = constantNodeValue(node);
      return;
    }
    const folded = !down.has(p) ? identityConstant(ix, tensor) : undefined;
    if (folded) {
      // torch.onnx deduplicates equal initialisers (e.g. zero biases) through Identity nodes
      constants[tensor] = folded;
      return;
    }
    if (!down.has(p)) {
      throw new MedmaskError('MODEL_INVALID', `head node "${reader.name}" (${reader.opType}) reads "${tensor}", which is computed without the target "${target}" (a skip connection around it?)`, {
        hint: 'choose a target tensor after the point where the branches join, e.g. the input of the global pooling',
        details: { node: reader.name, tensor },
      });
    }
    if (keep.has(p)) return;
    keep.add(p);
    for (const i of node.input) visit(i, node);
  };
  const last = ix.nodes[ix.producer.get(out)!]!;
  keep.add(ix.producer.get(out)!);
  for (const i of last.input) visit(i, last);
  const nodes: HeadNodeDesc[] = [...keep].sort((a, b) => a - b).map((i) => {
    const n = ix.nodes[i]!;
    return { op: n.opType, name: n.name || `${n.opType}#${i}`, inputs: [...n.input], outputs: [...n.output], attrs: nodeAttributes(n) };
  });
  return { target, output: out, nodes, constants };
}

/**
 * A copy of the model with extra graph outputs (float tensors of any shape unless `elemTypes`
 * says otherwise), e.g. the CAM target. Names already among the outputs are skipped.
 * @param model - a decoded model (not modified)
 * @param names - tensor names to expose
 * @param elemTypes - ONNX element type by name (default FLOAT = 1; BOOL = 9)
 * @returns the edited model
 * @example
 * const session = await ort.InferenceSession.create(encodeOnnx(addGraphOutputs(model, [target])));
 */
export function addGraphOutputs(model: OnnxModel, names: string[], elemTypes: Record<string, number> = {}): OnnxModel {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = copy.graph!;
  g.output ??= [];
  const have = new Set(g.output.map((o) => o.name));
  const ix = indexGraph(copy);
  for (const name of names) {
    if (have.has(name)) continue;
    if (!ix.producer.has(name)) throw new MedmaskError('MODEL_INVALID', `cannot expose "${name}": no node produces it`);
    const elemType = elemTypes[name] ?? onnx.TensorProto.DataType.FLOAT;
    g.output.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType } } }));
  }
  return copy;
}

/** Input / output names and shapes of a graph (symbolic dims as strings). */
export interface GraphSignature {
  inputs: { name: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
}

/**
 * Inputs and outputs of the graph with their declared shapes.
 * @param model - a decoded model
 * @returns the signature
 * @example
 * graphSignature(model).inputs[0]; // { name: 'input', dims: ['batch', 3, 224, 224] }
 */
export function graphSignature(model: OnnxModel): GraphSignature {
  const g = model.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const dims = (v: InstanceType<typeof onnx.ValueInfoProto>): (number | string)[] =>
    (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : num(d.dimValue as LongLike)));
  return {
    inputs: (g.input ?? []).filter((i) => !inits.has(i.name)).map((i) => ({ name: i.name ?? '', dims: dims(i as InstanceType<typeof onnx.ValueInfoProto>) })),
    outputs: (g.output ?? []).map((o) => ({ name: o.name ?? '', dims: dims(o as InstanceType<typeof onnx.ValueInfoProto>) })),
  };
}

/** Result of {@link activateDropout}. */
export interface ActivatedDropout {
  /** The edited model. */
  model: OnnxModel;
  /** Dropout nodes switched on: name, output, mask output (may be empty) and ratio. */
  nodes: { name: string; output: string; mask: string; ratio: number }[];
}

/**
 * Full Monte Carlo Dropout (Gal & Ghahramani 2016) by graph edit: every Dropout node gets
 * `training_mode = true` (so onnxruntime samples a new mask on each run) and a `seed` attribute
 * (so a fresh session repeats the same sequence of masks).
 * @param model - a decoded model (not modified)
 * @param seed - seed written into the Dropout nodes (node i gets seed + i)
 * @returns the edited model and the Dropout nodes
 * @throws MedmaskError MODEL_INVALID when the graph has no Dropout node (an eval-mode export drops them)
 * @example
 * const { model: mc } = activateDropout(decodeOnnx(bytes), 7);
 */
export function activateDropout(model: OnnxModel, seed = 0): ActivatedDropout {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = copy.graph!;
  g.initializer ??= [];
  const ix = indexGraph(copy);
  const nodes: ActivatedDropout['nodes'] = [];
  const TRUE = 'medmask_dropout_training_mode';
  let n = 0;
  for (const node of ix.nodes) {
    if (node.opType !== 'Dropout') continue;
    let ratio = 0.5;
    const r = node.input[1];
    if (r) {
      const init = ix.initializers.get(r);
      const p = ix.producer.get(r);
      if (init) ratio = Number(tensorValues(init).data[0]);
      else if (p !== undefined && ix.nodes[p]!.opType === 'Constant') ratio = Number(constantNodeValue(ix.nodes[p]!).data[0]);
    } else {
      const a = nodeAttributes(node).ratio;
      if (typeof a === 'number') ratio = a;
    }
    while (node.input.length < 2) node.input.push('');
    node.input[2] = TRUE;
    node.attribute = (node.attribute ?? []).filter((a) => a.name !== 'seed');
    node.attribute.push(onnx.AttributeProto.create({ name: 'seed', type: onnx.AttributeProto.AttributeType.INT, i: seed + n++ }));
    nodes.push({ name: node.name ?? '', output: node.output[0] ?? '', mask: node.output[1] ?? '', ratio });
  }
  if (!nodes.length) {
    throw new MedmaskError('MODEL_INVALID', 'the model has no Dropout nodes, so full MC Dropout cannot run', {
      hint: 'export with the dropout modules in train mode and torch.onnx.TrainingMode.PRESERVE, or use head MC (--mc-mode head)',
    });
  }
  g.initializer.push(onnx.TensorProto.create({ name: TRUE, dataType: onnx.TensorProto.DataType.BOOL, dims: [], rawData: Uint8Array.of(1) }));
  return { model: copy, nodes };
}
