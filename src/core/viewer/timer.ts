/**
 * Time on case: the time a reviewer actually spends on a case — counted while the page is visible
 * and the reviewer has acted in the last `idleMs`, so a case left open over lunch does not count
 * an hour. The clock is passed in, so tests need no waiting.
 * @module
 */

/**
 * Active-time counter.
 * @example
 * const t = new ActiveTimer(() => performance.now());
 * t.activity(); // on every input event
 * t.setVisible(document.visibilityState === 'visible');
 * t.elapsedMs(); // send with the review
 */
export class ActiveTimer {
  private total = 0;
  private lastTick: number;
  private lastActivity: number;
  private visible = true;

  constructor(
    private readonly now: () => number,
    private readonly idleMs = 120_000,
  ) {
    this.lastTick = now();
    this.lastActivity = this.lastTick;
  }

  private tick(): void {
    const t = this.now();
    if (this.visible) {
      // count up to the moment the reviewer went idle
      const until = Math.min(t, this.lastActivity + this.idleMs);
      if (until > this.lastTick) this.total += until - this.lastTick;
    }
    this.lastTick = t;
  }

  /** A keystroke, click or mouse move. */
  activity(): void {
    this.tick();
    this.lastActivity = this.lastTick;
  }

  /** Page shown or hidden. */
  setVisible(v: boolean): void {
    this.tick();
    if (v && !this.visible) this.lastActivity = this.lastTick;
    this.visible = v;
  }

  /** Active milliseconds so far (whole). */
  elapsedMs(): number {
    this.tick();
    return Math.round(this.total);
  }
}
