/**
 * The HTTP API's routes, in one table: the API handler dispatches on it, the local server
 * decides from it which requests need the admin token and which an API key, and the CDK stack
 * creates its API Gateway routes (and their authorizers) from it.
 */
export type RouteAuth = 'admin' | 'partner' | 'public';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Route {
  readonly method: HttpMethod;
  /** API Gateway route syntax: `{name}` is one path segment. */
  readonly path: string;
  /**
   * admin: the platform's own services (IAM in AWS); partner: an API key; public: anyone (only
   * the API's own description).
   */
  readonly auth: RouteAuth;
  readonly operation: string;
  /**
   * On AWS, the function that serves it: the API function, the small polling function
   * (functions/api/polling.ts) for routes that wait, or the ops function (functions/api/ops.ts),
   * which alone may touch the queues. @default 'api'
   */
  readonly lambda?: 'api' | 'poll' | 'ops';
}

export const ROUTES = [
  { method: 'GET', path: '/openapi.json', auth: 'public', operation: 'getOpenApi' },
  { method: 'POST', path: '/v1/partners', auth: 'admin', operation: 'createPartner' },
  { method: 'POST', path: '/v1/partners/{id}/keys', auth: 'admin', operation: 'issuePartnerApiKey' },
  { method: 'GET', path: '/v1/partners/{id}/keys', auth: 'admin', operation: 'listPartnerApiKeys' },
  {
    method: 'DELETE',
    path: '/v1/partners/{id}/keys/{keyId}',
    auth: 'admin',
    operation: 'revokePartnerApiKey',
  },
  { method: 'POST', path: '/v1/keys', auth: 'partner', operation: 'createApiKey' },
  { method: 'GET', path: '/v1/keys', auth: 'partner', operation: 'listApiKeys' },
  { method: 'DELETE', path: '/v1/keys/{id}', auth: 'partner', operation: 'revokeApiKey' },
  { method: 'POST', path: '/v1/events', auth: 'admin', operation: 'publishEvent' },
  // Before `/v1/events/{id}`: the first route that matches wins here, and API Gateway too
  // prefers a fixed segment to a parameter.
  { method: 'POST', path: '/v1/events/batch', auth: 'admin', operation: 'publishEventBatch' },
  { method: 'GET', path: '/v1/events', auth: 'partner', operation: 'listEvents', lambda: 'poll' },
  { method: 'GET', path: '/v1/events/{id}', auth: 'partner', operation: 'getEvent' },
  { method: 'GET', path: '/v1/events/{id}/deliveries', auth: 'partner', operation: 'listEventDeliveries' },
  { method: 'POST', path: '/v1/events/{id}/redeliver', auth: 'partner', operation: 'redeliverEvent' },
  { method: 'GET', path: '/v1/consumers', auth: 'partner', operation: 'listConsumers' },
  { method: 'PUT', path: '/v1/consumers/{name}', auth: 'partner', operation: 'putConsumer' },
  { method: 'GET', path: '/v1/consumers/{name}', auth: 'partner', operation: 'getConsumer' },
  { method: 'DELETE', path: '/v1/consumers/{name}', auth: 'partner', operation: 'deleteConsumer' },
  {
    method: 'GET',
    path: '/v1/consumers/{name}/events',
    auth: 'partner',
    operation: 'readConsumer',
    lambda: 'poll',
  },
  { method: 'POST', path: '/v1/consumers/{name}/ack', auth: 'partner', operation: 'ackConsumer' },
  { method: 'POST', path: '/v1/subscriptions', auth: 'partner', operation: 'createSubscription' },
  { method: 'GET', path: '/v1/subscriptions', auth: 'partner', operation: 'listSubscriptions' },
  { method: 'GET', path: '/v1/subscriptions/{id}', auth: 'partner', operation: 'getSubscription' },
  { method: 'PATCH', path: '/v1/subscriptions/{id}', auth: 'partner', operation: 'updateSubscription' },
  { method: 'DELETE', path: '/v1/subscriptions/{id}', auth: 'partner', operation: 'deleteSubscription' },
  {
    method: 'POST',
    path: '/v1/subscriptions/{id}/rotate-secret',
    auth: 'partner',
    operation: 'rotateSecret',
  },
  { method: 'GET', path: '/v1/subscriptions/{id}/deliveries', auth: 'partner', operation: 'listDeliveries' },
  { method: 'POST', path: '/v1/subscriptions/{id}/replay', auth: 'partner', operation: 'replaySubscription' },
  { method: 'POST', path: '/v1/subscriptions/{id}/test', auth: 'partner', operation: 'sendTestEvent' },
  {
    method: 'POST',
    path: '/v1/subscriptions/{id}/transform-preview',
    auth: 'partner',
    operation: 'previewTransformation',
  },
  { method: 'GET', path: '/v1/egress-ips', auth: 'partner', operation: 'listEgressIps' },
  { method: 'GET', path: '/v1/connect-info', auth: 'partner', operation: 'getConnectInfo' },
  { method: 'GET', path: '/v1/admin/queues', auth: 'admin', operation: 'listQueues', lambda: 'ops' },
  {
    method: 'GET',
    path: '/v1/admin/dlq/{queue}/messages',
    auth: 'admin',
    operation: 'listDeadLetters',
    lambda: 'ops',
  },
  {
    method: 'DELETE',
    path: '/v1/admin/dlq/{queue}/messages',
    auth: 'admin',
    operation: 'purgeDeadLetters',
    lambda: 'ops',
  },
  {
    method: 'POST',
    path: '/v1/admin/dlq/{queue}/redrive',
    auth: 'admin',
    operation: 'redriveDeadLetters',
    lambda: 'ops',
  },
  {
    method: 'GET',
    path: '/v1/admin/dlq/{queue}/redrives',
    auth: 'admin',
    operation: 'listRedrives',
    lambda: 'ops',
  },
  {
    method: 'DELETE',
    path: '/v1/admin/dlq/{queue}/redrives/{taskId}',
    auth: 'admin',
    operation: 'cancelRedrive',
    lambda: 'ops',
  },
  {
    method: 'GET',
    path: '/v1/admin/subscriptions',
    auth: 'admin',
    operation: 'listSubscriptionHealth',
    lambda: 'ops',
  },
  {
    method: 'GET',
    path: '/v1/admin/delivery-rates',
    auth: 'admin',
    operation: 'getDeliveryRates',
    lambda: 'ops',
  },
] as const satisfies readonly Route[];

export type Operation = (typeof ROUTES)[number]['operation'];

export type RouteMatch =
  | { kind: 'found'; route: (typeof ROUTES)[number]; params: Record<string, string> }
  | { kind: 'method-not-allowed'; allowed: HttpMethod[] }
  | { kind: 'not-found' };

/** Each route's path template, split at its slashes once. */
const TEMPLATES: readonly (readonly string[])[] = ROUTES.map((route) => route.path.split('/'));

function matchPath(want: readonly string[], got: readonly string[]): Record<string, string> | undefined {
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i] ?? '';
    const g = got[i] ?? '';
    if (w.startsWith('{') && w.endsWith('}')) {
      if (g === '') return undefined;
      try {
        params[w.slice(1, -1)] = decodeURIComponent(g);
      } catch {
        return undefined; // malformed percent-encoding names no resource
      }
    } else if (w !== g) {
      return undefined;
    }
  }
  return params;
}

/** Finds the route for a request, or says whether the path exists under other methods. */
export function matchRoute(method: string, rawPath: string): RouteMatch {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const segments = path.split('/');
  const allowed: HttpMethod[] = [];
  for (const [i, route] of ROUTES.entries()) {
    const params = matchPath(TEMPLATES[i] ?? [], segments);
    if (!params) continue;
    if (route.method === method.toUpperCase()) return { kind: 'found', route, params };
    allowed.push(route.method);
  }
  return allowed.length > 0 ? { kind: 'method-not-allowed', allowed } : { kind: 'not-found' };
}
