// Types for the WASM sentencepiece build used as the tokenizer benchmark's baseline.
declare module '@agnai/sentencepiece-js' {
  export class SentencePieceProcessor {
    load(modelPath: string): Promise<void>;
    encodeIds(text: string): number[];
    decodeIds(ids: number[]): string;
  }
  const sentencepiece: { SentencePieceProcessor: typeof SentencePieceProcessor };
  export default sentencepiece;
}
