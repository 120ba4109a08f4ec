/**
 * The optional 3D / multiplanar view of a volume case with NiiVue (loaded only when opened, as its
 * own chunk): the image and the saved mask version as a label overlay in the legend's colours.
 * Offered only where a hardware WebGL2 was detected (see gpu.ts).
 */
import type { LegendEntry } from '../../../src/core/viewer/index.js';
import { dialog, h, toast } from '../ui.js';

/** Open the 3D view in a dialog. */
export async function open3d(o: { imageId: string; maskId: string; version: number; window: [number, number]; legend: LegendEntry[]; unsaved: number }): Promise<void> {
  const canvas = h('canvas', { class: 'nv-canvas', id: 'nv-canvas' }) as HTMLCanvasElement;
  const status = h('p', { class: 'muted' }, 'Loading NiiVue and the volume…');
  const modes = h('div', { class: 'group' });
  const body = h('div', { class: 'view3d' }, modes, h('div', { class: 'nv-box' }, canvas), status);
  const closed = dialog('3D view', body, [{ label: 'Close', value: () => true, primary: true }], { wide: true });
  try {
    const { Niivue, NVImage } = await import('@niivue/niivue');
    const nv = new Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, dragAndDropEnabled: false, isColorbar: false });
    await nv.attachToCanvas(canvas);
    const img = await NVImage.loadFromUrl({ url: `/api/images/${encodeURIComponent(o.imageId)}/data`, name: 'image.nii.gz', cal_min: o.window[0], cal_max: o.window[1] });
    nv.addVolume(img);
    if (o.version > 0) {
      const mask = await NVImage.loadFromUrl({ url: `/api/masks/${encodeURIComponent(o.maskId)}/versions/${o.version}/data`, name: 'mask.nii.gz', opacity: 0.6 });
      const max = Math.max(0, ...o.legend.map((e) => e.value));
      const I = Array.from({ length: max + 1 }, (_, i) => i);
      const col = (i: number) => o.legend.find((e) => e.value === i)?.color ?? [255, 255, 255];
      mask.setColormapLabel({ I, R: I.map((i) => col(i)[0]), G: I.map((i) => col(i)[1]), B: I.map((i) => col(i)[2]), A: I.map((i) => (i ? 255 : 0)), labels: I.map((i) => o.legend.find((e) => e.value === i)?.name ?? '') });
      nv.addVolume(mask);
    }
    for (const [label, type] of [['3D render', nv.sliceTypeRender], ['Multiplanar', nv.sliceTypeMultiplanar], ['Axial', nv.sliceTypeAxial]] as const) {
      modes.append(h('button', { onclick: () => nv.setSliceType(type) }, label));
    }
    nv.setSliceType(nv.sliceTypeRender);
    status.textContent = `Version ${o.version}${o.unsaved ? ` (your ${o.unsaved.toLocaleString()} unsaved voxel edits are not shown here: save first)` : ''}. Drag to rotate, wheel to zoom.`;
  } catch (e) {
    status.textContent = `The 3D view could not start: ${(e as Error).message}`;
    toast('3D view failed; the slice viewer is unaffected.', 'error');
  }
  await closed;
}
