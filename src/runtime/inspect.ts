/**
 * What `medmask model inspect` reports about an ONNX classifier: inputs, outputs, candidate CAM
 * targets (with whether a head can be read after each) and the head after the chosen target.
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isMedmaskError, MedmaskError } from '../core/errors.js';
import { compileHead } from '../core/explain/head.js';
import { decodeOnnx, defaultTarget, extractHead, findTargetCandidates, graphSignature, type GraphSignature } from './onnx-graph.js';
import { resolveModel } from './manifest.js';

/** Report of {@link inspectModel}. */
export interface ModelInspection {
  path: string;
  opset: number[];
  inputs: GraphSignature['inputs'];
  outputs: GraphSignature['outputs'];
  /**
   * Candidate targets: the chosen target first, then the others from the pooling nearest the
   * logits back; `activations` are the pointwise ops between a pre-activation candidate and the
   * pooling (empty for the tensor the pooling reads); `head` is the reason when no usable head follows.
   */
  candidates: { tensor: string; producer: string; pooling: string; activations: string[]; head: 'ok' | string }[];
  /** The chosen target (the given one, else the default). */
  target: string;
  /** Head after the chosen target: ops in order, with constant shapes. */
  head: { op: string; name: string; constants: Record<string, number[]> }[];
}

/**
 * Inspect an ONNX classifier.
 * @param path - the `.onnx` file, its manifest (`.json`) or the folder holding `model.json`
 *   (then the manifest's `cam.target` is the default target)
 * @param target - a target tensor to use instead of the default
 * @returns the report
 * @throws MedmaskError MODEL_INVALID / NOT_FOUND as for loading a model
 * @example
 * const r = await inspectModel('m.onnx'); r.head.map((n) => n.op); // ['GlobalAveragePool', 'Flatten', 'Gemm']
 */
export async function inspectModel(path: string, target?: string): Promise<ModelInspection> {
  let bytes: Uint8Array;
  if (path.toLowerCase().endsWith('.json') || (existsSync(path) && statSync(path).isDirectory())) {
    const r = await resolveModel(path);
    bytes = r.bytes;
    target ??= r.manifest.cam?.target;
    path = r.onnxPath;
  } else {
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw new MedmaskError('NOT_FOUND', `cannot read model ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
  const model = decodeOnnx(bytes, path);
  const sig = graphSignature(model);
  const chosen = target ?? defaultTarget(model);
  const found = findTargetCandidates(model);
  const pools = [...new Set(found.map((c) => c.pooling.name))];
  const ordered = found
    .map((c, i) => ({ c, key: (pools.length - pools.indexOf(c.pooling.name)) * found.length + i }))
    .sort((a, b) => (a.c.tensor === chosen ? -1 : b.c.tensor === chosen ? 1 : a.key - b.key))
    .map((x) => x.c);
  const candidates = ordered.map((c) => {
    let head = 'ok';
    try {
      compileHead(extractHead(model, c.tensor));
    } catch (e) {
      head = isMedmaskError(e) ? e.message : String(e);
    }
    return { tensor: c.tensor, producer: `${c.producer.op} ${c.producer.name}`, pooling: `${c.pooling.op} ${c.pooling.name}`, activations: c.activations, head };
  });
  const desc = extractHead(model, chosen);
  compileHead(desc);
  return {
    path,
    opset: (model.opsetImport ?? []).map((o) => Number(o.version)),
    inputs: sig.inputs,
    outputs: sig.outputs,
    candidates,
    target: chosen,
    head: desc.nodes.map((n) => ({
      op: n.op,
      name: n.name,
      constants: Object.fromEntries(n.inputs.filter((i) => desc.constants[i]).map((i) => [i, desc.constants[i]!.dims])),
    })),
  };
}
