/**
 * The address guard's resolver on Node: the system resolver (getaddrinfo, so /etc/hosts and
 * search domains apply), every address, in the order it gives them.
 */
import { lookup } from "node:dns/promises";
import type { Resolver } from "../../push/address-guard.ts";

export const nodeResolver: Resolver = async (hostname) => {
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.map((answer) => answer.address);
};
