/**
 * @module
 * A partition assigner that leaves partitions where they are. kafkajs's round-robin assigner deals
 * every partition out afresh at each rebalance, so a member joining, leaving or subscribing to a new
 * topic moves most partitions, and the work in flight in each one moved is done again by its new
 * owner. Here each member says in its join what it owns (`userData`), and the leader keeps those
 * partitions with their owners, up to an even share of each topic, and deals out only the rest, each
 * to the member subscribed to its topic that has fewest of it. Members of an earlier version, which know only
 * round-robin, make the group fall back to it (kafkajs picks a protocol every member has).
 *
 * @example
 * ```ts
 * import { stickyPlan } from "./sticky_assigner.ts";
 * const plan = stickyPlan(
 *   [
 *     { memberId: "a", topics: new Set(["t"]), owned: ["t\u00000", "t\u00001", "t\u00002", "t\u00003"] },
 *     { memberId: "b", topics: new Set(["t"]), owned: [] },
 *   ],
 *   ["t\u00000", "t\u00001", "t\u00002", "t\u00003"],
 * );
 * // a keeps two of its partitions, b (new) takes the other two: two move, not four.
 * if (plan.get("a")!.length !== 2 || !plan.get("a")!.every((id) => id <= "t\u00001")) throw new Error("a keeps 0 and 1");
 * ```
 */
import { Buffer } from "node:buffer";
import { AssignerProtocol, type PartitionAssigner } from "kafkajs";
import { partitionId, partitionOf } from "../model.ts";

/** The protocol's name, the same on every member of this version. */
export const STICKY = "AgentstreamSticky";

export interface Subscriber {
  memberId: string;
  /** The topics it subscribes to. */
  topics: ReadonlySet<string>;
  /** What it owns now, as {@link partitionId}s. */
  owned: readonly string[];
}

/**
 * Which partitions (by {@link partitionId}) go to which member. Topic by topic, so that each is
 * spread over the members subscribed to it: owners keep theirs up to an even share of the topic,
 * and the rest go to the subscribed member that has fewest of that topic (then fewest in all).
 */
export function stickyPlan(members: readonly Subscriber[], partitions: readonly string[]): Map<string, string[]> {
  const sorted = [...members].sort((a, b) => a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0);
  const plan = new Map(sorted.map((m) => [m.memberId, [] as string[]]));
  const byTopic = Map.groupBy([...partitions].sort(), (id) => partitionOf(id)!.topic);
  for (const [topic, ids] of byTopic) {
    const eligible = sorted.filter((member) => member.topics.has(topic));
    if (!eligible.length) continue;
    const share = Math.ceil(ids.length / eligible.length);
    const exists = new Set(ids);
    const taken = new Set<string>();
    const mine = new Map(eligible.map((member) => [member.memberId, 0]));
    for (const member of eligible) {
      for (const id of member.owned) {
        if (mine.get(member.memberId)! >= share) break;
        if (!exists.has(id) || taken.has(id)) continue;
        plan.get(member.memberId)!.push(id);
        mine.set(member.memberId, mine.get(member.memberId)! + 1);
        taken.add(id);
      }
    }
    for (const id of ids) {
      if (taken.has(id)) continue;
      const fewest = eligible.reduce((best, member) => {
        const [a, b] = [mine.get(member.memberId)!, mine.get(best.memberId)!];
        return a < b || (a === b && plan.get(member.memberId)!.length < plan.get(best.memberId)!.length)
          ? member
          : best;
      });
      plan.get(fewest.memberId)!.push(id);
      mine.set(fewest.memberId, mine.get(fewest.memberId)! + 1);
      taken.add(id);
    }
  }
  return plan;
}

/** The assigner, for a member whose current partitions `owned()` gives (as {@link partitionId}s). */
export function stickyAssigner(owned: () => Iterable<string>): PartitionAssigner {
  return ({ cluster }) => ({
    name: STICKY,
    version: 0,
    assign({ members, topics }) {
      const subscribers = members.map(({ memberId, memberMetadata }) => {
        const metadata = AssignerProtocol.MemberMetadata.decode(memberMetadata);
        let owns: string[] = [];
        try {
          owns = metadata?.userData?.length ? JSON.parse(metadata.userData.toString()) : [];
        } catch {
          // Not ours to read: it owns nothing we know of.
        }
        return { memberId, topics: new Set(metadata?.topics ?? []), owned: Array.isArray(owns) ? owns : [] };
      });
      const partitions = topics.flatMap((topic) =>
        cluster.findTopicPartitionMetadata(topic).map((metadata) => partitionId(topic, metadata.partitionId))
      );
      const plan = stickyPlan(subscribers, partitions);
      return Promise.resolve([...plan].map(([memberId, ids]) => {
        const assignment: Record<string, number[]> = {};
        for (const id of ids) {
          const { topic, partition } = partitionOf(id)!;
          (assignment[topic] ??= []).push(partition);
        }
        return {
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: 0,
            assignment,
            userData: Buffer.alloc(0),
          }),
        };
      }));
    },
    protocol({ topics }) {
      return {
        name: STICKY,
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 0,
          topics,
          userData: Buffer.from(JSON.stringify([...owned()])),
        }),
      };
    },
  });
}
