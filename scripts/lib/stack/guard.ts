// Runs one command so that it never outlives the process that started it:
//   node guard.ts COMMAND [ARGS...]
// The parent spawns the guard detached, so the guard leads a new process group that the command
// (and whatever it starts, e.g. wrangler's workerd) joins. The parent keeps our stdin open; when
// it closes (the parent exited, even by SIGKILL), the whole group is terminated. The parent stops
// the command by signalling the group; the guard ignores those signals, waits for the command and
// exits with its status (128 + signal number when it was killed by a signal).
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: node guard.ts COMMAND [ARGS...]\n');
  process.exit(2);
}

const GRACE_MS = 2000;

function signalGroup(signal: NodeJS.Signals): void {
  try {
    process.kill(-process.pid, signal);
  } catch {
    // the group is already gone
  }
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => {});

const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
child.on('error', (err) => {
  process.stderr.write(`cannot start ${command}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  // Anything the command left behind in the group goes with it.
  signalGroup('SIGTERM');
  process.exit(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1));
});

const orphaned = () => {
  signalGroup('SIGTERM');
  setTimeout(() => signalGroup('SIGKILL'), GRACE_MS).unref();
};
process.stdin.once('end', orphaned);
process.stdin.once('close', orphaned);
process.stdin.on('error', orphaned);
process.stdin.resume();
