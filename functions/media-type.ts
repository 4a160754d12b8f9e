/** Reading a Content-Type or an Accept: the one parser for the JSON middleware, the produce body and the answer forms. */

/** The media type (lowercase) and the charset parameter, if well-formed, of a Content-Type. */
export function mediaType(contentType: string | undefined): { type: string | undefined; charset?: string } {
  if (contentType === undefined) return { type: undefined };
  const [type, ...parameters] = contentType.split(";");
  const charset = parameters.map((p) => p.trim().match(/^charset\s*=\s*"?([^";]+)"?$/i)?.[1]).find((value) => value !== undefined);
  return { type: type.trim().toLowerCase(), ...(charset && { charset: charset.trim().toLowerCase() }) };
}

/** JSON and ndjson are UTF-8 (RFC 8259): another charset is refused rather than misread. */
export function isUtf8(media: { charset?: string }): boolean {
  return media.charset === undefined || media.charset === "utf-8";
}

/** True when an Accept header names `type` exactly (with a non-zero quality). */
export function accepts(accept: string | undefined, type: string): boolean {
  if (!accept) return false;
  return accept.split(",").some((range) => {
    const [name, ...params] = range.split(";").map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith("q="));
    return name === type && (q === undefined || Number(q.slice(2)) > 0);
  });
}
