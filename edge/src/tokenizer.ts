// The tokenizer, built from the compiled table bundled with the worker (a Data module), once per
// isolate and only when a request first needs it: startup stays cheap for /healthz and admin.

export interface EdgeTokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  createStreamDecoder(): { push(id: number): string; flush(): string };
}

let loading: Promise<EdgeTokenizer> | undefined;

export function loadTokenizer(): Promise<EdgeTokenizer> {
  loading ??= import('./tokenizer-bundle.ts').then(
    (m) => m.bundledTokenizer(),
    (err: unknown) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}
