// `npm start`: the local stack on this machine. Starts the GPU function and the edge
// (`wrangler dev`) on 127.0.0.1 and stops both on Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';

const quiet = {
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_HIDE_BANNER: 'true',
};

const children: ChildProcess[] = [];
function run(name: string, cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(cmd, args, { env: { ...process.env, ...quiet, ...env }, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    console.log(`[start] ${name} exited (${signal ?? code})`);
    shutdown(code ?? 1);
  });
  children.push(child);
  return child;
}

let stopping = false;
function shutdown(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 500).unref();
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

run('gpu-function', process.execPath, ['gpu-function/src/main.ts'], { HOST: '127.0.0.1', PORT: '8788' });
run('edge', process.execPath, [
  'node_modules/wrangler/bin/wrangler.js',
  'dev',
  '--ip',
  '127.0.0.1',
  '--port',
  '8787',
]);
console.log('[start] edge: http://127.0.0.1:8787  gpu-function: http://127.0.0.1:8788');
console.log('[start] try: curl http://127.0.0.1:8787/healthz');
