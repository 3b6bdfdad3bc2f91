// The Google service-account key (GPU_INVOKER_KEY) that lets the Worker call the GPU function
// through Cloud Run's invoker IAM. Only the fields the token exchange needs are kept.

import { SettingsError } from '../../../shared/src/config.ts';

export interface ServiceAccountKey {
  clientEmail: string;
  privateKeyId: string;
  /** PKCS#8 PEM. */
  privateKey: string;
  tokenUri: string;
}

const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';

/** Parses the JSON key file as `gcloud iam service-accounts keys create` writes it. */
export function parseServiceAccountKey(json: string): ServiceAccountKey {
  // The messages never quote the key: it is a secret.
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new SettingsError('GPU_INVOKER_KEY is not valid JSON (expected a service-account key file)');
  }
  const k = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const field = (name: string) => {
    const v = k[name];
    if (typeof v !== 'string' || v === '') {
      throw new SettingsError(`GPU_INVOKER_KEY has no '${name}' (expected a service-account key file)`);
    }
    return v;
  };
  if (k.type !== 'service_account') {
    throw new SettingsError(
      "GPU_INVOKER_KEY is not a service-account key (its 'type' is not service_account)",
    );
  }
  const privateKey = field('private_key');
  if (!privateKey.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new SettingsError("GPU_INVOKER_KEY's private_key is not a PKCS#8 PEM key");
  }
  const tokenUri = typeof k.token_uri === 'string' && k.token_uri !== '' ? k.token_uri : DEFAULT_TOKEN_URI;
  try {
    new URL(tokenUri);
  } catch {
    throw new SettingsError("GPU_INVOKER_KEY's token_uri is not a URL");
  }
  return {
    clientEmail: field('client_email'),
    privateKeyId: field('private_key_id'),
    privateKey,
    tokenUri,
  };
}
