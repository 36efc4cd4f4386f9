/**
 * The KMS client, created once per cold start at module scope, for the functions that read or
 * write subscriptions (their signing secrets are sealed with KMS). Apart from clients.ts so the
 * authorizer, which never sees a subscription, does not load the KMS package.
 */
import { KMSClient } from '@aws-sdk/client-kms';

export const kmsClient = new KMSClient({});
