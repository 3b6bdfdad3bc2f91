/** A checkpoint that cannot be read or does not fit the model; the message names the file or tensor. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}
