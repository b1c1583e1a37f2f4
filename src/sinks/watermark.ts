/**
 * A position two stages of a worker share for one track: how far the track's capture is final (the track
 * publishes it when it flushes), and how far a streaming encoder has read it (the encoder publishes that). The
 * track must never write below what was read; if it ever does, the watermark records the violation and the
 * encoder gives up its stream (the finisher then encodes the track from the capture).
 *
 * Each side writes only its own half, through its own method; neither reaches into the other.
 */
export class Watermark {
  #final = 0;
  #read = 0;
  #violated = false;

  /** Sample frames below this are on disk and will not change (as of the track's last flush). */
  get finalEnd(): number {
    return this.#final;
  }

  /** Sample frames below this were read by an encoder. */
  get readEnd(): number {
    return this.#read;
  }

  /** True once the track wrote below what an encoder had read. */
  get violated(): boolean {
    return this.#violated;
  }

  /** The track: everything below `end` is final. Only moves forward. */
  publishFinal(end: number): void {
    if (end > this.#final) this.#final = end;
  }

  /** The encoder: it has read everything below `end`. */
  publishRead(end: number): void {
    if (end > this.#read) this.#read = end;
  }

  /** The track: it is writing at `position`; below the read end, that breaks the encoder's stream. */
  noteWrite(position: number): void {
    if (position < this.#read) this.#violated = true;
  }
}
