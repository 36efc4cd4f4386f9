/**
 * The CloudWatch client, created once per cold start at module scope, for the ops function
 * (which reads queue ages and the dispatcher's metrics). Apart from clients.ts so no other
 * function loads the CloudWatch package.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';

export const cloudWatchClient = new CloudWatchClient({});
