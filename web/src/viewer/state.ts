/**
 * The viewer's state, one object per open case, and the shape every controller sees: the case
 * (`info`), what is being edited (`editor`, `baseVersion`), what is on screen (`axis`, `index`,
 * `displayed`) and the display settings. Controllers (layout, navigation, editing, saving,
 * drafts) hold no state of their own beyond their timers; they read and write this object.
 */
import { ActiveTimer, MaskEditor, labelLut, legendFor, type LegendEntry, type ViewAxis } from '../../../src/core/viewer/index.js';
import type { Api, CaseInfo, Draft, OverlayKind, Region } from '../api.js';
import type { DraftsController } from './drafts.js';
import type { EditingController } from './editing.js';
import type { ViewerLayout } from './layout.js';
import type { MultiView } from './multiview.js';
import type { Navigation } from './navigation.js';
import type { SaveController } from './saving.js';
import { SliceCache, type CachedSlice } from './slice-cache.js';
import { SliceView, type ViewSettings } from './slice-view.js';

/** Editing tools. */
export type Tool = 'brush' | 'eraser' | 'threshold' | 'fill' | 'fill-range' | 'holes' | 'bounded' | 'sphere' | 'wl' | 'cross';

/** What the page needs from the app. */
export interface ViewerNav {
  toQueue(): void;
  /** Open the next case after this one (resolves false when the queue is empty). */
  next(currentMaskId: string): Promise<boolean>;
  /** A case of this data set was opened (the queue defaults to it). */
  opened?(datasetId: string): void;
}

/** The state of one open case. */
export class ViewerState {
  readonly shape: [number, number, number];
  readonly is3d: boolean;
  readonly canEdit: boolean;
  readonly canReview: boolean;
  readonly overlayKinds: OverlayKind[];
  readonly cache: SliceCache;
  readonly editor: MaskEditor;
  readonly timer = new ActiveTimer(() => performance.now());
  readonly settings: ViewSettings;
  readonly view: SliceView;
  /** The version being edited. */
  baseVersion: number;
  legend: LegendEntry[];
  lut: Uint8Array;
  /** The label the tools write. */
  label: number;
  /** Label values hidden on screen. */
  readonly hidden = new Set<number>();
  /** Label values no tool may change. */
  readonly locked = new Set<number>();
  tool: Tool = 'brush';
  /** Brush diameter in pixels (2D brush) and sphere radius in mm. */
  brushSize: number;
  sphereMm: number;
  fillRange = 5;
  keepOthers = false;
  /** Intensity range of the bounded fill and the threshold brush (null: picked from the seed on each click / stroke). */
  fillBounds: [number, number] | null = null;
  /** The bounded fill refuses to change more than this share of a slice. */
  fillGuard = 0.25;
  axis: ViewAxis = 'z';
  readonly index: Record<ViewAxis, number>;
  regions: Region[] = [];
  regionCursor = -1;
  drafts: Draft[] = [];
  loadingDraft = false;
  displayed: CachedSlice | null = null;
  displayLabels: Uint8Array | null = null;
  closed = false;
  saving = false;
  claimed = false;

  constructor(
    readonly api: Api,
    readonly maskId: string,
    readonly info: CaseInfo,
  ) {
    this.shape = info.shape;
    this.is3d = this.shape[2] > 1;
    this.canEdit = api.can('edit');
    this.canReview = api.can('review');
    this.overlayKinds = (Object.keys(info.overlays) as OverlayKind[]).filter((k) => info.overlays[k]);
    this.cache = new SliceCache(api, maskId, ['image', 'labels', ...this.overlayKinds]);
    this.editor = new MaskEditor(this.shape);
    this.baseVersion = info.currentVersion;
    this.legend = legendFor(info.target, info.labels);
    this.lut = labelLut(this.legend);
    this.label = this.legend.find((e) => info.labels.includes(e.value))?.value ?? this.legend[0]!.value;
    this.brushSize = Math.max(2, Math.round(Math.min(this.shape[0], this.shape[1]) / 48));
    this.sphereMm = Math.max(1, Math.round(3 * Math.min(...info.spacing) * 10) / 10);
    this.index = { x: Math.floor(this.shape[0] / 2), y: Math.floor(this.shape[1] / 2), z: Math.floor(this.shape[2] / 2) };
    this.settings = {
      window: info.window,
      showLabels: true,
      labelOpacity: 0.45,
      outline: false,
      heatKind: this.overlayKinds.includes('attention') ? 'attention' : (this.overlayKinds[0] ?? null),
      showHeat: this.overlayKinds.length > 0,
      heatOpacity: 0.4,
      zoom: 1,
      pan: [0, 0],
    };
    this.view = new SliceView(this.settings, () => this.visibleLut());
  }

  /** The label colour table with hidden labels transparent. */
  visibleLut(): Uint8Array {
    if (!this.hidden.size) return this.lut;
    const l = this.lut.slice();
    for (const v of this.hidden) l.fill(0, 4 * v, 4 * v + 4);
    return l;
  }

  /** Whether a tool may write over a voxel showing `current`. */
  writable(current: number): boolean {
    return !this.locked.has(current);
  }
}

/** The controllers of one open case, wired together. */
export interface Viewer {
  st: ViewerState;
  nav: ViewerNav;
  ui: ViewerLayout;
  slices: Navigation;
  edit: EditingController;
  saver: SaveController;
  drafts: DraftsController;
  multi: MultiView;
}
