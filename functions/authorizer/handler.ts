/**
 * The partner API's Lambda authorizer (simple responses): a Bearer API key in, the partner's
 * id and the key's out as context. API Gateway caches the answer per key for the authorizer's
 * cache time (so a revoked key works that much longer); the local server calls it per request.
 */
import middy from '@middy/core';
import type {
  APIGatewayRequestAuthorizerEventV2,
  APIGatewaySimpleAuthorizerWithContextResult,
} from 'aws-lambda';
import { UnauthorizedError } from '../core/errors.ts';
import { authenticateApiKey } from '../core/partners.ts';
import type { Clock, PartnerStore } from '../core/ports.ts';

/** What the API and the access logs learn of the caller: its partner and which of its keys. */
export type AuthorizerResult = APIGatewaySimpleAuthorizerWithContextResult<{
  partnerId: string;
  keyId: string;
}>;

const DENY: AuthorizerResult = { isAuthorized: false, context: { partnerId: '', keyId: '' } };

/** The API key out of `Authorization: Bearer <key>`, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

export function createAuthorizerHandler(deps: { partners: PartnerStore; clock: Clock }) {
  return middy<APIGatewayRequestAuthorizerEventV2, AuthorizerResult>().handler(async (event) => {
    const apiKey = bearerToken(event.headers?.authorization ?? event.headers?.Authorization);
    if (!apiKey) return DENY;
    try {
      const { partnerId, keyId } = await authenticateApiKey(deps, apiKey);
      return { isAuthorized: true, context: { partnerId, keyId } };
    } catch (error) {
      if (error instanceof UnauthorizedError) return DENY;
      throw error;
    }
  });
}

export type AuthorizerHandler = ReturnType<typeof createAuthorizerHandler>;
