/**
 * The partner API's Lambda authorizer (simple responses): a Bearer API key in, the partner's
 * id out as context. API Gateway caches the answer per key; the local server calls it per
 * request.
 */
import middy from '@middy/core';
import type {
  APIGatewayRequestAuthorizerEventV2,
  APIGatewaySimpleAuthorizerWithContextResult,
} from 'aws-lambda';
import { UnauthorizedError } from '../core/errors.ts';
import { authenticateApiKey } from '../core/partners.ts';
import type { PartnerStore } from '../core/ports.ts';

export type AuthorizerResult = APIGatewaySimpleAuthorizerWithContextResult<{ partnerId: string }>;

const DENY: AuthorizerResult = { isAuthorized: false, context: { partnerId: '' } };

/** The API key out of `Authorization: Bearer <key>`, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

export function createAuthorizerHandler(deps: { partners: PartnerStore }) {
  return middy<APIGatewayRequestAuthorizerEventV2, AuthorizerResult>().handler(async (event) => {
    const apiKey = bearerToken(event.headers?.authorization ?? event.headers?.Authorization);
    if (!apiKey) return DENY;
    try {
      const partner = await authenticateApiKey(deps, apiKey);
      return { isAuthorized: true, context: { partnerId: partner.id } };
    } catch (error) {
      if (error instanceof UnauthorizedError) return DENY;
      throw error;
    }
  });
}

export type AuthorizerHandler = ReturnType<typeof createAuthorizerHandler>;
