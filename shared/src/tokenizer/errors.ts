/** Thrown for a model file that cannot be read or uses features this tokenizer does not implement. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}
