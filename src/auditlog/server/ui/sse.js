// Server-Sent Events read through fetch: EventSource cannot send an Authorization header,
// and the credential never goes into a URL. `SseParser` is the event-stream format of the
// HTML standard ("Interpreting an event stream"), pure; `follow` keeps one stream open,
// reconnecting with Last-Event-ID as EventSource would, so nothing is missed or repeated.

/** Splits an event stream's text into blocks: `{id, event, data, hasData}` for each blank
 * line that ends one, and `{comment}` for each comment line. `id` is the last event ID so far
 * (the stream's position), carried across blocks as the standard says. */
export class SseParser {
  constructor(emit) {
    this.emit = emit;
    this.buffer = "";
    this.started = false;
    this.lastEventId = "";
    this.retry = null;
    this.reset();
  }

  reset() {
    this.data = [];
    this.event = "";
    this.sawId = false;
  }

  push(text) {
    let chunk = text;
    if (!this.started) {
      if (chunk.length === 0) return;
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length || this.sawId) {
        this.emit({
          id: this.lastEventId,
          event: this.event || "message",
          data: this.data.join("\n"),
          hasData: this.data.length > 0,
        });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) {
      this.emit({ comment: line.slice(1).trimStart() });
      return;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) {
      this.lastEventId = value;
      this.sawId = true;
    } else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/**
 * Follows a live stream until `stop()`:
 *   url         the stream's URL (its filters, perhaps after_seq)
 *   headers     a function giving the request's headers (the credential, read each time)
 *   onEvent     each `audit` event: (the stored event's text, its seq)
 *   onState     ("live" | "reconnecting" | "stopped", a sentence or null) as things change
 *   onFailure   (an ApiError-like {status, detail}) when the answer is a refusal to give up on
 * Reconnects after the server's `retry` (2 s by default), with Last-Event-ID set to the last
 * position seen; a 429 or 503 waits its Retry-After; any other refusal ends it.
 */
export function follow({ url, headers, onEvent, onState, onFailure }) {
  const controller = new AbortController();
  let stopped = false;
  let lastId = "";
  let retryMs = 2000;

  async function once() {
    const requestHeaders = { ...headers(), Accept: "text/event-stream" };
    if (lastId) requestHeaders["Last-Event-ID"] = lastId;
    const response = await fetch(url, {
      headers: requestHeaders,
      signal: controller.signal,
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = `the live stream answered ${response.status}`;
      try {
        const problem = await response.json();
        if (problem && problem.detail) detail = problem.detail;
      } catch {
        // not a problem document: the status says enough
      }
      const retryAfter = Number(response.headers.get("Retry-After"));
      return { status: response.status, detail, retryAfter };
    }
    onState("live", null);
    const parser = new SseParser((block) => {
      if (block.comment !== undefined) return;
      if (block.id) lastId = block.id;
      if (block.hasData && block.event === "audit") onEvent(block.data, Number(block.id));
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
      if (parser.retry !== null) retryMs = parser.retry;
    }
    return null;
  }

  async function run() {
    while (!stopped) {
      let refusal = null;
      try {
        refusal = await once();
      } catch (error) {
        if (stopped) return;
        refusal = null;
        onState("reconnecting", `the connection was lost (${error.message}); reconnecting`);
      }
      if (stopped) return;
      let waitMs = retryMs;
      if (refusal) {
        if (refusal.status === 429 || refusal.status === 503) {
          waitMs = Math.max(retryMs, (refusal.retryAfter || 1) * 1000);
          onState("reconnecting", `${refusal.detail}; trying again`);
        } else {
          stopped = true;
          onState("stopped", refusal.detail);
          onFailure(refusal);
          return;
        }
      } else {
        onState("reconnecting", "the stream ended; reconnecting");
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        controller.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  run();
  return {
    stop() {
      stopped = true;
      controller.abort();
    },
    position() {
      return lastId;
    },
  };
}
