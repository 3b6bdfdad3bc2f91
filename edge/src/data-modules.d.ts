// Files bundled as Data modules (wrangler.toml [[rules]]) import as ArrayBuffers.
declare module '*.bin' {
  const bytes: ArrayBuffer;
  export default bytes;
}
