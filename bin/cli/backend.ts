/**
 * What the `dispatcher` command's ops commands ask of a deployment, whichever it is: the local
 * runtime through its admin API (http.ts), or an AWS stack through the AWS APIs (aws.ts).
 */
import type {
  DeadLetterView,
  RedrivePlan,
  RedriveRequest,
  SubscriptionHealthView,
} from '../../functions/core/ops.ts';
import type { QueueInfo, RedriveTask, SubscriptionHealth } from '../../functions/core/ports.ts';

export interface CreatedPartnerView {
  id: string;
  name: string;
  apiKey: string;
  apiKeyId: string;
}

export interface PublishRequest {
  partnerId: string;
  type: string;
  payload: unknown;
  idempotencyKey?: string;
}

export interface OpsBackend {
  /** Where it talks to, for messages: a URL, or the stack's name and region. */
  readonly target: string;
  queues(): Promise<QueueInfo[]>;
  deadLetters(queue: string, limit: number): Promise<DeadLetterView[]>;
  redrive(
    queue: string,
    request: RedriveRequest,
  ): Promise<{ dryRun: true; plan: RedrivePlan } | { dryRun: false; task: RedriveTask }>;
  redrives(queue: string): Promise<RedriveTask[]>;
  cancelRedrive(queue: string, taskId: string): Promise<RedriveTask>;
  purge(queue: string): Promise<{ queue: string; purged: number | null }>;
  subscriptions(
    status: SubscriptionHealth,
    query: { limit: number; after?: string },
  ): Promise<{ items: SubscriptionHealthView[]; next: string | null }>;
  createPartner(name: string): Promise<CreatedPartnerView>;
  publish(event: PublishRequest): Promise<{ id: string; created: boolean }>;
  close(): Promise<void>;
}

/** The deployment answered with an error: its problem's detail, and its status where it has one. */
export class BackendError extends Error {
  readonly status: number | undefined;

  constructor(message: string, status?: number) {
    super(message);
    this.name = 'BackendError';
    this.status = status;
  }
}
