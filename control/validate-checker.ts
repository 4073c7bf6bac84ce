// The small schema engine behind validateResource: each helper checks one
// OpenAPI constraint, records an error in the wording kube-apiserver uses for
// that constraint (a CRD's schema errors read `<field> in body should ...`,
// as apiextensions-apiserver words them), and returns the (possibly
// defaulted) value.
import type { ConfigError } from './types.js';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

export interface StrOpts {
  required?: boolean;
  min?: number;
  max?: number;
  pattern?: RegExp;
  enum?: readonly string[];
}

export interface IntOpts {
  required?: boolean;
  min?: number;
  max?: number;
}

export interface ArrOpts {
  required?: boolean;
  min?: number;
  max?: number;
}

export class Checker {
  readonly errors: ConfigError[] = [];
  constructor(
    readonly source: string,
    public resource: string,
  ) {}

  err(field: string, message: string): void {
    this.errors.push({ source: this.source, resource: this.resource, field, message });
  }

  required(field: string): void {
    this.err(field, 'Required value');
  }

  /** An object field; reports a type error and returns undefined when it is not one. */
  obj(v: unknown, field: string, required = false): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.required(field);
      return undefined;
    }
    if (!isObj(v)) {
      this.err(field, `Invalid value: "${typeName(v)}": ${field} in body must be of type object: "${typeName(v)}"`);
      return undefined;
    }
    return v;
  }

  str(v: unknown, field: string, o: StrOpts = {}): string | undefined {
    if (v === undefined || v === null) {
      if (o.required) this.required(field);
      return undefined;
    }
    if (typeof v !== 'string') {
      this.err(field, `Invalid value: "${typeName(v)}": ${field} in body must be of type string: "${typeName(v)}"`);
      return undefined;
    }
    if (o.enum && !o.enum.includes(v)) {
      this.err(field, `Unsupported value: ${show(v)}: supported values: ${o.enum.map((e) => `"${e}"`).join(', ')}`);
      return v;
    }
    if (o.min !== undefined && v.length < o.min) {
      this.err(field, `Invalid value: ${show(v)}: ${field} in body should be at least ${o.min} chars long`);
    }
    if (o.max !== undefined && v.length > o.max) {
      this.err(field, `Too long: may not be more than ${o.max} bytes`);
    }
    if (o.pattern && v.length > 0 && !o.pattern.test(v)) {
      this.err(field, `Invalid value: ${show(v)}: ${field} in body should match '${o.pattern.source}'`);
    }
    return v;
  }

  int(v: unknown, field: string, o: IntOpts = {}): number | undefined {
    if (v === undefined || v === null) {
      if (o.required) this.required(field);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.err(field, `Invalid value: "${typeName(v)}": ${field} in body must be of type integer: "${typeName(v)}"`);
      return undefined;
    }
    if (o.min !== undefined && v < o.min) {
      this.err(field, `Invalid value: ${v}: ${field} in body should be greater than or equal to ${o.min}`);
    }
    if (o.max !== undefined && v > o.max) {
      this.err(field, `Invalid value: ${v}: ${field} in body should be less than or equal to ${o.max}`);
    }
    return v;
  }

  bool(v: unknown, field: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.err(field, `Invalid value: "${typeName(v)}": ${field} in body must be of type boolean: "${typeName(v)}"`);
      return undefined;
    }
    return v;
  }

  arr(v: unknown, field: string, o: ArrOpts = {}): unknown[] | undefined {
    if (v === undefined || v === null) {
      if (o.required) this.required(field);
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.err(field, `Invalid value: "${typeName(v)}": ${field} in body must be of type array: "${typeName(v)}"`);
      return undefined;
    }
    if (o.min !== undefined && v.length < o.min) {
      this.err(field, `Invalid value: ${v.length}: ${field} in body should have at least ${o.min} items`);
    }
    if (o.max !== undefined && v.length > o.max) {
      this.err(field, `Too many: ${v.length}: must have at most ${o.max} items`);
    }
    return v;
  }

  /** A map of string to string (labels, selector, ConfigMap data, env). */
  stringMap(v: unknown, field: string): Record<string, string> | undefined {
    const o = this.obj(v, field);
    if (!o) return undefined;
    for (const [k, val] of Object.entries(o)) {
      if (typeof val !== 'string') {
        this.err(`${field}.${k}`, `Invalid value: "${typeName(val)}": ${field}.${k} in body must be of type string: "${typeName(val)}"`);
      }
    }
    return o as Record<string, string>;
  }

  /** x-kubernetes-list-type: map — the key must be unique across entries. */
  uniqueKeys(items: unknown[], field: string, key: string): void {
    const seen = new Set<string>();
    items.forEach((it, i) => {
      if (!isObj(it) || typeof it[key] !== 'string') return;
      const k = it[key] as string;
      if (seen.has(k)) this.err(`${field}[${i}]`, `Duplicate value: {"${key}":${JSON.stringify(k)}}`);
      seen.add(k);
    });
  }

  /** x-kubernetes-list-type: set — entries must be unique. */
  uniqueSet(items: unknown[], field: string): void {
    const seen = new Set<string>();
    items.forEach((it, i) => {
      const k = JSON.stringify(it);
      if (seen.has(k)) this.err(`${field}[${i}]`, `Duplicate value: ${k}`);
      seen.add(k);
    });
  }
}

// Patterns of the Gateway API v1.1 CRDs (apis/v1/shared_types.go) and of Kubernetes names.
export const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
export const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const SECTION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export const MSG_DNS1123_SUBDOMAIN =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
export const MSG_DNS1123_LABEL =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
export const MSG_DNS1035_LABEL =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
