// A form generated from a kind's config JSON Schema: strings, numbers,
// booleans, enums as selects, objects and lists of simple values, and a
// JSON text area for anything more complex.
import { lazy, Suspense, useEffect, useState } from 'react';

const CodeField = lazy(() => import('./CodeField.jsx'));

/** Follows `$ref`s into the schema's definitions. */
export function resolve(schema, root, depth = 0) {
  if (!schema || typeof schema !== 'object' || depth > 20) return schema || {};
  if (schema.$ref) {
    const name = schema.$ref.replace(/^#\/(\$defs|definitions)\//, '');
    const target = (root.$defs && root.$defs[name]) || (root.definitions && root.definitions[name]);
    const { $ref, ...rest } = schema;
    return resolve({ ...(target || {}), ...rest }, root, depth + 1);
  }
  // `anyOf: [X, {type: null}]` (an optional field): X.
  const alt = schema.anyOf || schema.oneOf;
  if (alt && alt.length === 2 && alt.some((s) => s && s.type === 'null')) {
    const other = alt.find((s) => !(s && s.type === 'null'));
    const { anyOf, oneOf, ...rest } = schema;
    return { ...resolve(other, root, depth + 1), ...rest, nullable: true };
  }
  return schema;
}

/** The allowed values of an enum-like schema, or null. */
export function choicesOf(schema, root) {
  const s = resolve(schema, root);
  if (Array.isArray(s.enum)) return s.enum.filter((v) => v !== null);
  const alt = s.oneOf || s.anyOf;
  if (Array.isArray(alt) && alt.length) {
    const vals = [];
    for (const a of alt) {
      const r = resolve(a, root);
      if (r.const !== undefined) vals.push(r.const);
      else if (Array.isArray(r.enum)) vals.push(...r.enum);
      else if (r.type === 'null') continue;
      else return null;
    }
    return vals.filter((v) => v !== null);
  }
  return null;
}

const typeOf = (s) => (Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type);
const simple = (s) => ['string', 'number', 'integer', 'boolean'].includes(typeOf(s));
const fieldKey = (path) => path.join('.');
const idOf = (ctx, path) => `f-${ctx.nodeId}-${path.join('-')}`.replace(/[^A-Za-z0-9_-]/g, '_');

/** The whole form for a config object. */
export default function SchemaForm({ schema, value, onChange, ctx }) {
  const root = schema || {};
  const s = resolve(root, root);
  const props = s.properties || {};
  const names = Object.keys(props);
  if (!names.length) {
    return <JsonField label="config" path={['config']} value={value} onChange={onChange} ctx={ctx} />;
  }
  const required = new Set(s.required || []);
  const config = value && typeof value === 'object' ? value : {};
  return (
    <div className="fm-form">
      {names.map((name) => (
        <Field
          key={name}
          name={name}
          schema={props[name]}
          root={root}
          required={required.has(name)}
          value={config[name]}
          path={[name]}
          ctx={ctx}
          onChange={(v) => {
            const next = { ...config };
            if (v === undefined) delete next[name];
            else next[name] = v;
            onChange(next);
          }}
        />
      ))}
    </div>
  );
}

function Field({ name, schema, root, required, value, onChange, path, ctx }) {
  const s = resolve(schema, root);
  const id = idOf(ctx, path);
  const problem = problemAt(ctx.problems, fieldKey(path));
  const label = (
    <label htmlFor={id} title={s.description || ''}>
      {name}
      {required ? ' *' : ''}
    </label>
  );
  const help = s.description ? <small className="muted">{s.description}</small> : null;
  const wrap = (control, extra) => (
    <div className={'fm-field' + (problem ? ' has-problem' : '')} data-field={fieldKey(path)}>
      {label}
      {control}
      {extra}
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      {help}
    </div>
  );
  const disabled = ctx.readOnly;
  const choices = choicesOf(schema, root);
  if (choices && choices.length) {
    return wrap(
      <select id={id} disabled={disabled} value={value === undefined || value === null ? '' : JSON.stringify(value)} onChange={(e) => onChange(e.target.value === '' ? undefined : JSON.parse(e.target.value))}>
        <option value="">{s.default != null ? `(default: ${String(s.default)})` : '(none)'}</option>
        {choices.map((c) => (
          <option key={JSON.stringify(c)} value={JSON.stringify(c)}>
            {String(c)}
          </option>
        ))}
      </select>,
    );
  }
  const t = typeOf(s);
  const reads = s['x-flowmesh-field'];
  if (ctx.kind === 'code' && name === 'source' && path.length === 1) {
    return wrap(
      <Suspense fallback={<textarea id={id} readOnly value={value ?? ''} rows={8} />}>
        <CodeField id={id} value={typeof value === 'string' ? value : ''} language={ctx.config && ctx.config.language} readOnly={disabled} onChange={onChange} />
      </Suspense>,
    );
  }
  if (t === 'boolean') {
    return (
      <div className={'fm-field fm-check' + (problem ? ' has-problem' : '')} data-field={fieldKey(path)}>
        <input id={id} type="checkbox" disabled={disabled} checked={value === undefined ? !!s.default : !!value} onChange={(e) => onChange(e.target.checked)} />
        {label}
        {problem && <p className="error">{problem}</p>}
      </div>
    );
  }
  if (t === 'number' || t === 'integer') {
    return wrap(
      <input
        id={id}
        type="number"
        disabled={disabled}
        step={t === 'integer' ? 1 : 'any'}
        placeholder={s.default != null ? String(s.default) : ''}
        value={value === undefined || value === null ? '' : value}
        onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))}
      />,
    );
  }
  if (t === 'string') {
    if (value !== undefined && typeof value !== 'string') {
      return <JsonField label={name} path={path} value={value} onChange={onChange} ctx={ctx} problem={problem} />;
    }
    const long = reads === 'template' || (typeof value === 'string' && value.length > 40);
    const control = long ? (
      <textarea id={id} rows={2} disabled={disabled} value={value ?? ''} placeholder={s.default != null ? String(s.default) : ''} onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value)} />
    ) : (
      <input id={id} type="text" disabled={disabled} value={value ?? ''} placeholder={s.default != null ? String(s.default) : ''} onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value)} />
    );
    return wrap(control, reads && reads !== 'value' ? <Refs reads={reads} ctx={ctx} name={name} onInsert={(r) => onChange((value || '') + r)} /> : null);
  }
  if (t === 'object' && s.properties && !disabled) {
    const obj = value && typeof value === 'object' && !Array.isArray(value) ? value : {};
    const req = new Set(s.required || []);
    return (
      <fieldset className="fm-fieldset" data-field={fieldKey(path)}>
        <legend>{name}</legend>
        {Object.keys(s.properties).map((k) => (
          <Field
            key={k}
            name={k}
            schema={s.properties[k]}
            root={root}
            required={req.has(k)}
            value={obj[k]}
            path={[...path, k]}
            ctx={ctx}
            onChange={(v) => {
              const next = { ...obj };
              if (v === undefined) delete next[k];
              else next[k] = v;
              onChange(Object.keys(next).length ? next : undefined);
            }}
          />
        ))}
      </fieldset>
    );
  }
  if (t === 'object' && !s.properties && s.additionalProperties && simpleOrAny(resolve(s.additionalProperties, root))) {
    const inner = resolve(s.additionalProperties, root);
    return wrap(<KeyValues id={id} name={name} value={value} onChange={onChange} ctx={ctx} reads={inner['x-flowmesh-field'] || reads} />);
  }
  if (t === 'array' && s.items && simple(resolve(s.items, root)) && (value === undefined || (Array.isArray(value) && value.every((v) => typeof v !== 'object')))) {
    const inner = resolve(s.items, root);
    const list = Array.isArray(value) ? value : [];
    return wrap(
      <textarea
        id={id}
        rows={Math.max(2, list.length + 1)}
        disabled={disabled}
        value={list.join('\n')}
        onChange={(e) => {
          const lines = e.target.value.split('\n');
          const vals = lines.map((l) => (typeOf(inner) === 'string' ? l : Number(l)));
          onChange(e.target.value === '' ? undefined : vals);
        }}
      />,
      <small className="muted">one value a line</small>,
    );
  }
  return <JsonField label={name} path={path} value={value} onChange={onChange} ctx={ctx} problem={problem} help={s.description} />;
}

/** The problems at a field, or within it (`mapping.email` shows on `mapping`). */
function problemAt(problems, key) {
  if (!problems || !problems.size) return null;
  const found = [];
  for (const [k, m] of problems) if (k === key || k.startsWith(key + '.')) found.push(k === key ? m : `${k.slice(key.length + 1)}: ${m}`);
  return found.length ? found.join('; ') : null;
}

const simpleOrAny = (s) => simple(s) || s === true || (s && Object.keys(s).filter((k) => !k.startsWith('x-') && k !== 'description').length === 0);

/** Buttons inserting an upstream node's name into a template or expression. */
function Refs({ reads, ctx, name, onInsert }) {
  if (ctx.readOnly || !ctx.upstream) return null;
  const names = ['trigger', ...ctx.upstream];
  return (
    <div className="fm-refs" role="group" aria-label={`References for ${name}`}>
      <span className="muted">insert:</span>
      {names.map((u) => (
        <button key={u} type="button" className="small" aria-label={`Insert ${u} into ${name}`} onClick={() => onInsert(reads === 'template' ? `{{ ${u} }}` : u)}>
          {u}
        </button>
      ))}
    </div>
  );
}

/** An object of names to simple values (headers, a mapping), a row each. */
function KeyValues({ id, name, value, onChange, ctx, reads }) {
  const obj = value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  const [rows, setRows] = useState(() => Object.entries(obj));
  useEffect(() => {
    const current = Object.fromEntries(rows.filter(([k]) => k !== ''));
    if (JSON.stringify(current) !== JSON.stringify(obj)) setRows(Object.entries(obj));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(obj)]);
  const commit = (next) => {
    setRows(next);
    const o = {};
    for (const [k, v] of next) if (k !== '') o[k] = v;
    onChange(Object.keys(o).length ? o : undefined);
  };
  return (
    <div className="fm-kv" id={id} role="group" aria-label={name}>
      {rows.map(([k, v], i) => (
        <div className="fm-kv-row" key={i}>
          <input aria-label={`${name} name ${i + 1}`} disabled={ctx.readOnly} value={k} onChange={(e) => commit(rows.map((r, j) => (j === i ? [e.target.value, r[1]] : r)))} />
          <input
            aria-label={`${name} value ${i + 1}`}
            disabled={ctx.readOnly}
            value={typeof v === 'string' ? v : JSON.stringify(v)}
            onChange={(e) => commit(rows.map((r, j) => (j === i ? [r[0], e.target.value] : r)))}
          />
          {!ctx.readOnly && (
            <button type="button" className="small" aria-label={`Remove ${name} ${i + 1}`} onClick={() => commit(rows.filter((_, j) => j !== i))}>
              ×
            </button>
          )}
        </div>
      ))}
      {!ctx.readOnly && (
        <button type="button" className="small" aria-label={`Add to ${name}`} onClick={() => setRows([...rows, ['', '']])}>
          + add
        </button>
      )}
      {reads && reads !== 'value' && <small className="muted">values are {reads}s</small>}
    </div>
  );
}

/** A JSON text area: the fallback for fields no simple control fits. */
export function JsonField({ label, path, value, onChange, ctx, problem, help }) {
  const id = idOf(ctx, path);
  const text = value === undefined ? '' : JSON.stringify(value, null, 2);
  const [draft, setDraft] = useState(text);
  const [err, setErr] = useState(null);
  useEffect(() => {
    setDraft(text);
    setErr(null);
  }, [text]);
  return (
    <div className={'fm-field' + (problem ? ' has-problem' : '')} data-field={fieldKey(path)}>
      <label htmlFor={id}>{label} (JSON)</label>
      <textarea
        id={id}
        className="mono"
        rows={Math.min(12, Math.max(3, draft.split('\n').length))}
        disabled={ctx.readOnly}
        value={draft}
        onChange={(e) => {
          setDraft(e.target.value);
          if (e.target.value.trim() === '') {
            setErr(null);
            onChange(undefined);
            return;
          }
          try {
            const v = JSON.parse(e.target.value);
            setErr(null);
            onChange(v);
          } catch (x) {
            setErr(x.message);
          }
        }}
      />
      {err && <p className="error">{err}</p>}
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      {help && <small className="muted">{help}</small>}
    </div>
  );
}
