/**
 * Is there a hardware WebGL2? The 3D view (NiiVue) is offered only then: under a software
 * renderer (SwiftShader, llvmpipe — virtual desktops) a whole-volume WebGL viewer takes about a
 * minute to show a CT and ~0.4 s per brush move (issue 8's measurements), while the Canvas 2D
 * slice viewer does not care. `localStorage['medmask-3d'] = 'on'` offers it anyway, `'off'` never.
 */

/** What was found. */
export interface GpuInfo {
  /** A WebGL2 context without a major performance caveat and not a known software renderer. */
  hardware: boolean;
  renderer: string;
  /** The 3D view is offered (hardware, or forced on). */
  offer3d: boolean;
}

const SOFTWARE = /swiftshader|llvmpipe|softpipe|software|basic render|mesa offscreen|virgl/i;

let cached: GpuInfo | undefined;

/** Probe once per page. */
export function gpuInfo(): GpuInfo {
  if (cached) return cached;
  let hardware = false;
  let renderer = 'none';
  try {
    const c = document.createElement('canvas');
    // Chrome refuses a context with failIfMajorPerformanceCaveat when only SwiftShader is there.
    const gl = c.getContext('webgl2', { failIfMajorPerformanceCaveat: true }) as WebGL2RenderingContext | null;
    if (gl) {
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      renderer = String(ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
      hardware = !SOFTWARE.test(renderer);
      gl.getExtension('WEBGL_lose_context')?.loseContext();
    } else renderer = 'no hardware WebGL2 (none, or a software renderer only)';
  } catch (e) {
    renderer = `WebGL2 probe failed: ${(e as Error).message}`;
  }
  let pref: string | null = null;
  try {
    pref = localStorage.getItem('medmask-3d');
  } catch {
    /* storage blocked */
  }
  cached = { hardware, renderer, offer3d: pref === 'on' || (pref !== 'off' && hardware) };
  return cached;
}
