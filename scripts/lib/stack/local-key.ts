// Makes sure the local API key works: registered once through the edge's admin API (which
// stores only its hash in the persisted KV), found again on later runs.
import type { StackLog } from './log.ts';

export type LocalKeyState = 'active' | 'registered' | 'revoked';

export async function ensureLocalKey(o: {
  edgeUrl: string;
  adminToken: string;
  key: string;
  log: StackLog;
}): Promise<LocalKeyState> {
  const probe = await fetch(`${o.edgeUrl}/v1/models`, { headers: { authorization: `Bearer ${o.key}` } });
  await probe.body?.cancel();
  if (probe.ok) return 'active';
  const res = await fetch(`${o.edgeUrl}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${o.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'local', key: o.key }),
  });
  const body = (await res.json().catch(() => ({}))) as { id?: string; error?: { message?: string } };
  // 200: it was registered before but its lookup copy was missing; registering again restored it.
  if (res.status === 201 || res.status === 200) {
    o.log.line('stack', `registered the local API key (id ${body.id})`);
    return 'registered';
  }
  if (res.status === 409) {
    o.log.line(
      'stack',
      'the local API key exists but is revoked: re-enable it with `npm run -s cli -- keys update ID --enable` (`keys list` shows the id)',
      'warn',
    );
    return 'revoked';
  }
  throw new Error(`registering the local API key failed: ${body.error?.message ?? `HTTP ${res.status}`}`);
}
