/** A model load failure with a message fit for logs and the client's error frame. */
export class WeightsError extends Error {
  override name = 'WeightsError';
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
