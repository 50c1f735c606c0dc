/**
 * @module
 * answers: meets each record of an answers topic with the task it answers. An agent's task that
 * stops to ask (`input-required`, `auth-required`) publishes its question to the responses topic and
 * waits (see src/a2a/asking_tasks.ts); its answer arrives on the route's answers topic, keyed by task
 * id, as `{"approvals": [{"approvalId": "…", "approved": true}]}` (Archestra's tool approvals),
 * `{"approved": true|false}` (every approval the task waits on; to a task that asks in text, the
 * text `approved` or `denied`) or `{"text": "…"}`. Once met, the answer's job stands for the message that started the task: invoke
 * sends the answer into the task and follows it, and its reply or failure goes where that message's
 * would. The answer's own offset commits with what it caused.
 *
 * An answer of another shape, or for a task that waits for none here (unknown, or finished), fails
 * here and goes to the answers topic's DLQ with the reason. The bridge's own timeout of a waiting
 * task (see {@link timeoutRecord}) is skipped when the task waits no more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readAnswer } from "./answers.ts";
 * assert.deepEqual(readAnswer({ approvals: [{ approvalId: "a-1", approved: true }] }), {
 *   approvals: [{ approvalId: "a-1", approved: true }],
 * });
 * assert.deepEqual(readAnswer({ text: "size M" }), { text: "size M" });
 * assert.match(String(readAnswer({ yes: 1 })), /an answer is/);
 * ```
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import { errorMessage, failure } from "../errors.ts";
import { decodeValue } from "./decode.ts";
import type { Answer, Job, MessageContext, OutRecord, WaitingTask } from "../model.ts";
import { ANSWER_KIND_HEADER } from "../dispatch.ts";
import { isLive } from "../model.ts";
import { contain } from "./stage.ts";

/** What the answers stage needs: where waiting tasks are kept. */
export interface AnswersContext {
  find(taskId: string): Promise<WaitingTask | undefined>;
}

const SHAPE =
  'an answer is {"approvals": [{"approvalId": "…", "approved": true}]}, {"approved": true|false} or {"text": "…"}';
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** An answer's body, read; a string says what is wrong with it. */
export function readAnswer(body: unknown): Pick<Answer, "approvals" | "text" | "approved" | "question"> | string {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return SHAPE;
  const { approvals, text, approved, question } = body as {
    approvals?: unknown;
    text?: unknown;
    approved?: unknown;
    question?: unknown;
  };
  const given = [approvals, text, approved].filter((field) => field !== undefined).length;
  if (given !== 1 || (question !== undefined && typeof question !== "string")) return SHAPE;
  // The question answered (`answer_to.question`), where the answer names it.
  const which = typeof question === "string" ? { question } : {};
  if (typeof text === "string") return { text, ...which };
  if (typeof approved === "boolean") return { approved, ...which };
  if (!Array.isArray(approvals) || !approvals.length) return SHAPE;
  const decisions = approvals.map((decision) => {
    const { approvalId, approved } = (decision ?? {}) as { approvalId?: unknown; approved?: unknown };
    return typeof approvalId === "string" && typeof approved === "boolean" ? { approvalId, approved } : undefined;
  });
  if (decisions.some((decision) => decision === undefined)) {
    return `${SHAPE}: each approval needs approvalId and approved`;
  }
  return { approvals: decisions as { approvalId: string; approved: boolean }[], ...which };
}

/**
 * The record the bridge writes to a task's answers topic when its wait times out: read like an
 * answer, it cancels the task if it still waits (and dead-letters its message as `input-required`).
 */
export function timeoutRecord(task: WaitingTask): { topic: string; record: OutRecord } {
  return {
    topic: task.answersTopic,
    record: {
      key: new TextEncoder().encode(task.taskId),
      value: new TextEncoder().encode(JSON.stringify({ timeout: true, deadline: task.deadline })),
      headers: { [ANSWER_KIND_HEADER]: "timeout" },
    },
  };
}

/** The text an answer's envelope shows as its request. */
function answerText(answer: Answer): string {
  if (answer.timeout) return "(no answer in time)";
  if (answer.approvals) {
    return answer.approvals.map((a) => `${a.approved ? "approved" : "denied"} ${a.approvalId}`).join("\n");
  }
  return answer.text ?? "";
}

/** Meets one answer's job with its task, or fails it. */
export async function meetAnswer(job: Job, ctx: AnswersContext, first: boolean): Promise<void> {
  const answer = job.answer!;
  if (!answer.taskId) {
    job.failure = failure("answer", "permanent", "an answer's key must be the id of the task it answers");
    return;
  }
  if (!answer.timeout) {
    let body: unknown;
    try {
      body = JSON.parse(utf8.decode(job.record.value ?? new Uint8Array()));
    } catch {
      job.failure = failure("answer", "permanent", `not JSON: ${SHAPE}`);
      return;
    }
    const read = readAnswer(body);
    if (typeof read === "string") {
      job.failure = failure("answer", "permanent", read);
      return;
    }
    Object.assign(answer, read);
  }
  const waiting = await ctx.find(answer.taskId);
  // A record read by several pipelines is answered by the one whose task it is.
  if (waiting && waiting.source.pipeline !== job.pipeline.name) {
    job.skipped = true;
    return;
  }
  if (!waiting) {
    // A timeout of a task answered meanwhile is no news; an answer is dead-lettered once.
    if (answer.timeout || !first) job.skipped = true;
    else {
      job.failure = failure(
        "answer",
        "permanent",
        `no task ${answer.taskId} waits for an answer here (unknown, or already answered and finished)`,
        { taskId: answer.taskId },
      );
    }
    return;
  }
  const handled = waiting.askedAfter;
  if (
    handled && handled.partition === job.record.partition && BigInt(job.record.offset) <= BigInt(handled.offset)
  ) {
    // An answer the task has had (delivered again after a crash): it asked anew since.
    job.skipped = true;
    return;
  }
  if (answer.timeout && Date.parse(waiting.deadline) > Date.now()) {
    // The task asked anew since this timeout was written, and waits to a later deadline.
    job.skipped = true;
    return;
  }
  if (answer.question !== undefined && answer.question !== waiting.question) {
    job.failure = failure("answer", "permanent", `answers an earlier question of task ${answer.taskId}: it asks anew`, {
      taskId: answer.taskId,
    });
    return;
  }
  if (answer.approved !== undefined) {
    // Every approval the task waits on; a task that asks in text gets the word.
    if (waiting.approvalIds?.length) {
      answer.approvals = waiting.approvalIds.map((approvalId) => ({ approvalId, approved: answer.approved! }));
    } else answer.text = answer.approved ? "approved" : "denied";
  }
  const route = job.pipeline.routes.find((r) => r.name === waiting.route);
  if (!route) {
    job.failure = failure(
      "answer",
      "permanent",
      `task ${answer.taskId} waits on route ${waiting.route}, which no longer exists`,
      {
        taskId: answer.taskId,
      },
    );
    return;
  }
  // The route's own agent, with its token; the one recorded if the route changed meanwhile.
  const agent = route.agents.find((a) => a.promptId === waiting.agent.promptId && a.url === waiting.agent.url) ??
    (waiting.agent.url !== undefined ? { url: waiting.agent.url } : { promptId: waiting.agent.promptId! });
  answer.waiting = waiting;
  job.route = route;
  job.agent = agent;
  job.text = answerText(answer);
  // From here on the answer stands for the message that started the task; its message id stays its own.
  const ctxOfSource: MessageContext = { ...waiting.source, messageId: job.ctx.messageId };
  job.ctx = ctxOfSource;
  // Its message's value, for publish templates that read it (when it was kept).
  if (waiting.original.value !== null) {
    job.value = decodeValue(job.pipeline, Buffer.from(waiting.original.value, "base64"));
  }
}

/** The answers stage: answers met with their tasks; other jobs pass untouched. */
export function answers(
  jobs: AsyncIterable<Job>,
  ctx: AnswersContext,
  firstPipeline: (topic: string) => string | undefined,
): AsyncIterable<Job> {
  return (async function* () {
    for await (const job of jobs) {
      if (job.answer && isLive(job)) {
        try {
          await meetAnswer(job, ctx, firstPipeline(job.record.topic) === job.pipeline.name);
        } catch (error) {
          contain(job, "answer", error);
        }
      }
      yield job;
    }
  })();
}

/**
 * Gives each task that waits past its deadline the bridge's own timeout on its answers topic, once
 * per deadline (a send that fails is tried again at the next tick): read like an answer, in turn
 * with any answer that came first, it cancels the task if it still waits. Returns the stop.
 */
export function startAnswerDeadlines(options: {
  expired: () => WaitingTask[];
  send: (topic: string, record: OutRecord) => Promise<void>;
  everyMs?: number;
}): () => void {
  const log = getLogger(["agentstream", "answers"]);
  const timedOut = new Set<string>();
  const timer = setInterval(async () => {
    const expired = options.expired();
    // Marks of tasks that no longer wait past a deadline go: the set holds only what waits now.
    const now = new Set(expired.map((task) => `${task.taskId}\n${task.deadline}`));
    for (const mark of timedOut) if (!now.has(mark)) timedOut.delete(mark);
    for (const task of expired) {
      const mark = `${task.taskId}\n${task.deadline}`;
      if (timedOut.has(mark)) continue;
      timedOut.add(mark);
      const { topic, record } = timeoutRecord(task);
      try {
        await options.send(topic, record);
      } catch (error) {
        timedOut.delete(mark);
        log.warn("could not time out task {taskId} on {topic}: {error}", {
          taskId: task.taskId,
          topic,
          error: errorMessage(error),
        });
      }
    }
  }, options.everyMs ?? 1_000);
  return () => clearInterval(timer);
}
