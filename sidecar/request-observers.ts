// The completed-request hook point (brief contract with "observe", issue 18):
// tap, access logs and tracing subscribe here. observe's sidecar/observe.ts
// is not on this branch, so this file defines the same interface; when the
// branches meet, the lead points the import at observe.ts and deletes this.
//
// The request path builds a record ONLY when `observers.active`, at the one
// place it records metrics (outbound-route.ts `finish`).

export interface RequestRecord {
  time: number;
  direction: 'outbound' | 'inbound';
  source: string;
  destination: string;
  service: string;
  route: string;
  backend: string;
  endpoint: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  upstreamMs: number;
  proxyError: string;
  traceId: string;
}

export type RequestObserver = (rec: RequestRecord) => void;

export class RequestObservers {
  private readonly list: RequestObserver[] = [];

  get active(): boolean {
    return this.list.length > 0;
  }

  /** Adds an observer; returns its removal. */
  add(o: RequestObserver): () => void {
    this.list.push(o);
    return () => {
      const i = this.list.indexOf(o);
      if (i >= 0) this.list.splice(i, 1);
    };
  }

  emit(rec: RequestRecord): void {
    for (const o of this.list) {
      try {
        o(rec);
      } catch {
        // An observer never breaks the request path.
      }
    }
  }
}
