/**
 * ONNX export of a mask head (`src/core/train/mask-head.ts`): Sub(mean) → Div(std) → Dropout →
 * Conv 1×1 → the lesion logit per activation cell (`mask_logit`, [N, 1, h, w]) and Sigmoid of it
 * (`mask_probability`). Either attached to the classifier's backbone cut at the CAM target (image
 * in, as any model is served), or alone on an `activation` input. The upsampling to the image is
 * left to the caller, as for the CAMs (`mapToImage`): upsample the logit, then apply the sigmoid.
 * Built with `onnx-proto`, as train-head's heads.
 * @module
 */
import pkg from 'onnx-proto';
import { MedmaskError } from '../core/errors.js';
import type { MaskHead } from '../core/train/mask-head.js';
import { attrFloat, attrInt, defaultOpset, floatTensor, pruneToTensor } from './head-onnx.js';
import type { OnnxModel } from './onnx-graph.js';

const { onnx } = pkg;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

/** Output with the lesion logit per activation cell, [N, 1, h, w]. */
export const MASK_LOGIT_OUTPUT = 'mask_logit';
/** Output with the lesion probability per activation cell (sigmoid of the logit). */
export const MASK_PROBABILITY_OUTPUT = 'mask_probability';
/** Input name of the head-only model. */
export const MASK_ACTIVATION_INPUT = 'activation';

function headNodes(head: MaskHead, input: string, opset: number): { nodes: NodeProto[]; inits: TensorProto[] } {
  const C = head.channels;
  const P = '/medmask_mask_head';
  const inits = [
    floatTensor('medmask_mask_head.mean', [1, C, 1, 1], head.mean),
    floatTensor('medmask_mask_head.std', [1, C, 1, 1], head.std),
    floatTensor('medmask_mask_head.conv.weight', [1, C, 1, 1], head.weight),
    floatTensor('medmask_mask_head.conv.bias', [1], [head.bias]),
  ];
  const dropIn = [`${P}/standardized`];
  const dropAttr = [];
  if (opset >= 12) {
    inits.push(floatTensor('medmask_mask_head.dropout.ratio', [], [head.dropout]));
    dropIn.push('medmask_mask_head.dropout.ratio');
  } else dropAttr.push(attrFloat('ratio', head.dropout));
  const nodes = [
    onnx.NodeProto.create({ opType: 'Sub', name: `${P}/Sub`, input: [input, 'medmask_mask_head.mean'], output: [`${P}/centred`] }),
    onnx.NodeProto.create({ opType: 'Div', name: `${P}/Div`, input: [`${P}/centred`, 'medmask_mask_head.std'], output: [`${P}/standardized`] }),
    onnx.NodeProto.create({ opType: 'Dropout', name: `${P}/Dropout`, input: dropIn, output: [`${P}/dropout`], attribute: dropAttr }),
    onnx.NodeProto.create({
      opType: 'Conv', name: `${P}/Conv`, input: [`${P}/dropout`, 'medmask_mask_head.conv.weight', 'medmask_mask_head.conv.bias'], output: [MASK_LOGIT_OUTPUT],
      attribute: [onnx.AttributeProto.create({ name: 'kernel_shape', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 1] }), attrInt('group', 1)],
    }),
    onnx.NodeProto.create({ opType: 'Sigmoid', name: `${P}/Sigmoid`, input: [MASK_LOGIT_OUTPUT], output: [MASK_PROBABILITY_OUTPUT] }),
  ];
  return { nodes, inits };
}

/**
 * The hypercolumn as ONNX: every tensor resized (Resize, linear, half_pixel — `resizeBilinear`'s
 * convention) to the size of the finest, whose size is read from its Shape at run time, then
 * Concat on the channels in the order target, layers.
 */
function hypercolumnNodes(target: string, layers: string[]): { nodes: NodeProto[]; inits: TensorProto[]; output: string } {
  const P = '/medmask_mask_head/hypercolumn';
  const finest = layers[layers.length - 1]!;
  // a bare Resize with `sizes` needs the finest layer's H, W: Shape → Slice [2, 4)
  const inits = [
    onnx.TensorProto.create({ name: 'medmask_mask_head.hc.starts', dims: [1], dataType: onnx.TensorProto.DataType.INT64, int64Data: [2] }),
    onnx.TensorProto.create({ name: 'medmask_mask_head.hc.ends', dims: [1], dataType: onnx.TensorProto.DataType.INT64, int64Data: [4] }),
  ];
  const nodes: NodeProto[] = [];
  const str = (name: string, v: string) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) });
  const sizeOf = (t: string, k: number): string => {
    nodes.push(onnx.NodeProto.create({ opType: 'Shape', name: `${P}/Shape_${k}`, input: [t], output: [`${P}/shape_${k}`] }));
    nodes.push(onnx.NodeProto.create({ opType: 'Slice', name: `${P}/SliceNC_${k}`, input: [`${P}/shape_${k}`, 'medmask_mask_head.hc.nc_starts', 'medmask_mask_head.hc.starts'], output: [`${P}/nc_${k}`] }));
    return `${P}/nc_${k}`;
  };
  inits.push(onnx.TensorProto.create({ name: 'medmask_mask_head.hc.nc_starts', dims: [1], dataType: onnx.TensorProto.DataType.INT64, int64Data: [0] }));
  nodes.push(onnx.NodeProto.create({ opType: 'Shape', name: `${P}/Shape_fine`, input: [finest], output: [`${P}/shape_fine`] }));
  nodes.push(onnx.NodeProto.create({ opType: 'Slice', name: `${P}/Slice_fine`, input: [`${P}/shape_fine`, 'medmask_mask_head.hc.starts', 'medmask_mask_head.hc.ends'], output: [`${P}/hw`] }));
  const parts = [target, ...layers].map((t, k) => {
    if (t === finest) return t;
    const nc = sizeOf(t, k);
    nodes.push(onnx.NodeProto.create({ opType: 'Concat', name: `${P}/Sizes_${k}`, input: [nc, `${P}/hw`], output: [`${P}/sizes_${k}`], attribute: [attrInt('axis', 0)] }));
    nodes.push(onnx.NodeProto.create({
      opType: 'Resize', name: `${P}/Resize_${k}`, input: [t, '', '', `${P}/sizes_${k}`], output: [`${P}/resized_${k}`],
      attribute: [str('mode', 'linear'), str('coordinate_transformation_mode', 'half_pixel')],
    }));
    return `${P}/resized_${k}`;
  });
  nodes.push(onnx.NodeProto.create({ opType: 'Concat', name: `${P}/Concat`, input: parts, output: [`${P}/features`], attribute: [attrInt('axis', 1)] }));
  return { nodes, inits, output: `${P}/features` };
}

function outputs(): InstanceType<typeof onnx.ValueInfoProto>[] {
  return [MASK_LOGIT_OUTPUT, MASK_PROBABILITY_OUTPUT].map((name) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
}

/**
 * The classifier's backbone up to the CAM target, followed by the mask head: image in,
 * {@link MASK_LOGIT_OUTPUT} and {@link MASK_PROBABILITY_OUTPUT} out.
 * @param model - the classifier (not modified)
 * @param target - its CAM target tensor (the head's input)
 * @param head - the trained head
 * @param metadata - key/value pairs stored as model metadata
 * @returns the new model
 * @throws MedmaskError MODEL_INVALID for a backbone opset below 7
 * @example
 * const bytes = encodeOnnx(attachMaskHead(decodeOnnx(b, 'model.onnx'), target, head));
 */
export function attachMaskHead(model: OnnxModel, target: string, head: MaskHead, metadata: Record<string, string> = {}): OnnxModel {
  const opset = defaultOpset(model) || 14;
  if (opset < 7) throw new MedmaskError('MODEL_INVALID', `the classifier uses ONNX opset ${opset}; mask heads are written for opset 7 or later`, { hint: 'export the classifier again with a newer opset' });
  const layers = head.layers ?? [];
  if (layers.length && opset < 13) throw new MedmaskError('MODEL_INVALID', `the classifier uses ONNX opset ${opset}; mask heads with hypercolumn layers are written for opset 13 or later`, { hint: 'train the head with --layers none, or export the classifier with a newer opset' });
  // the whole graph first, pruned below to what the head's outputs read
  const m = pruneToTensor(model, target);
  m.graph!.node = [...(model.graph!.node ?? [])];
  m.graph!.initializer = [...(model.graph!.initializer ?? [])];
  m.graph!.input = [...(model.graph!.input ?? [])];
  const g = m.graph!;
  const hc = layers.length ? hypercolumnNodes(target, layers.map((l) => l.tensor)) : { nodes: [], inits: [], output: target };
  const { nodes, inits } = headNodes(head, hc.output, opset);
  g.node = [...(g.node ?? []), ...hc.nodes, ...nodes];
  g.initializer = [...(g.initializer ?? []), ...hc.inits, ...inits];
  const pruned = pruneToTensor(m, MASK_PROBABILITY_OUTPUT);
  Object.assign(m, { graph: pruned.graph });
  m.graph!.output = outputs();
  m.producerName = 'medmask train-mask-head';
  m.docString = 'classifier backbone up to the CAM target + a per-pixel lesion head trained by medmask train-mask-head (standardise, Dropout, Conv 1×1, Sigmoid)';
  m.metadataProps = Object.entries(metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value }));
  return m;
}

/**
 * The mask head alone: input {@link MASK_ACTIVATION_INPUT} [N, C, h, w] (any h, w), outputs as
 * {@link attachMaskHead}. Opset 14.
 * @param head - the trained head
 * @returns the model
 * @example
 * const s = await ort.InferenceSession.create(encodeOnnx(buildMaskHeadOnnx(head)));
 */
export function buildMaskHeadOnnx(head: MaskHead): OnnxModel {
  const { nodes, inits } = headNodes(head, MASK_ACTIVATION_INPUT, 14);
  return onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'medmask train-mask-head',
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'medmask-mask-head',
      node: nodes,
      initializer: inits,
      input: [onnx.ValueInfoProto.create({
        name: MASK_ACTIVATION_INPUT,
        type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: head.channels }, { dimParam: 'h' }, { dimParam: 'w' }] } } },
      })],
      output: outputs(),
    },
  }) as OnnxModel;
}
