/**
 * The ops page on the local runtime: `GET /ops` and its script, style sheet and icon, static files
 * from local/ops-page/. The page holds no data and needs no token to load; in the browser it
 * asks for the admin token and calls the admin API (`/v1/admin/…`) with it.
 */
import { readFileSync } from 'node:fs';
import type { ApiResponse } from '../functions/api/handler.ts';

/** The page's files by path, with their media types. */
const FILES: Record<string, { file: string; contentType: string }> = {
  '/ops': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/ops/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/ops/app.css': { file: 'app.css', contentType: 'text/css; charset=utf-8' },
  '/ops/icon.svg': { file: 'icon.svg', contentType: 'image/svg+xml' },
};

/**
 * Only the page's own files and its own API: no inline script or style, no other origin, no
 * framing, no form posted anywhere.
 */
export const OPS_PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': OPS_PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const loaded = new Map<string, string>();

function contentOf(file: string): string {
  let text = loaded.get(file);
  if (text === undefined) {
    text = readFileSync(new URL(`./ops-page/${file}`, import.meta.url), 'utf8');
    loaded.set(file, text);
  }
  return text;
}

/** The answer to a GET or HEAD of one of the page's files; undefined for any other request. */
export function opsPageResponse(method: string, path: string): ApiResponse | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  const entry = FILES[path === '/ops/' ? '/ops' : path];
  if (entry === undefined) return undefined;
  return {
    statusCode: 200,
    headers: { 'content-type': entry.contentType, ...SECURITY_HEADERS },
    body: contentOf(entry.file),
  };
}
