// `npm run -s cli -- <command> ...`: the project's command line. Each command group lives in
// its own module under scripts/cli/ and is loaded only when used, so one group's dependencies
// (onnxruntime, the AWS SDK) never slow down another.

interface CommandModule {
  run(args: string[]): Promise<number | undefined> | number | undefined;
}

const COMMANDS: Record<string, { module: string; summary: string }> = {
  tokenize: { module: './cli/tokenizer.ts', summary: 'encode JSON lines ({"text"}) to id arrays' },
  detokenize: { module: './cli/tokenizer.ts', summary: 'decode JSON lines ({"ids"}) to strings' },
  tokenizer: { module: './cli/tokenizer.ts', summary: 'tokenizer compile --model PATH --out PATH' },
  convert: { module: './cli/convert.ts', summary: 'convert a Hugging Face checkpoint to ONNX' },
  logits: { module: './cli/model.ts', summary: 'print logits for token ids' },
  generate: { module: './cli/model.ts', summary: 'generate token ids' },
  upload: { module: './cli/upload.ts', summary: 'upload a converted model to S3-compatible storage' },
  keys: { module: './cli/keys.ts', summary: 'manage API keys through the admin API' },
  gpu: { module: './cli/gpu.ts', summary: "the GPU function's readiness and metrics (signed)" },
  fetch: {
    module: './cli/fetch.ts',
    summary: 'download the tokenizer or a checkpoint from the Hugging Face hub',
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `usage: npm run -s cli -- <command> [options]\n\ncommands:\n${rows.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return command ? 0 : 2;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`unknown command '${command}'\n\n${usage()}`);
    return 2;
  }
  const mod = (await import(entry.module)) as CommandModule;
  return (await mod.run([command, ...rest])) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
