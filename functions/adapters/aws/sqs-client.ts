/**
 * The SQS client, created once per cold start at module scope, for the functions that send
 * to a queue. Apart from adapters/aws/clients.ts because a bundle keeps every import of an
 * external package: the authorizer, which has no queue, would otherwise load the SQS package
 * at every cold start.
 */
import { SQSClient } from '@aws-sdk/client-sqs';

export const sqsClient = new SQSClient({});
