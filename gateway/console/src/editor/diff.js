// A line difference (longest common subsequence) for the version history.

/** Answers rows `{left, right, kind}`, kind one of same, del, add, change. */
export function lineDiff(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  // Trim the common head and tail: most versions differ in a few lines.
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xm = x.slice(head, x.length - tail);
  const ym = y.slice(head, y.length - tail);
  const rows = x.slice(0, head).map((l) => ({ left: l, right: l, kind: 'same' }));
  if (xm.length * ym.length > 4_000_000) {
    xm.forEach((l) => rows.push({ left: l, right: null, kind: 'del' }));
    ym.forEach((l) => rows.push({ left: null, right: l, kind: 'add' }));
  } else {
    const n = xm.length;
    const m = ym.length;
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = xm[i] === ym[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    let i = 0;
    let j = 0;
    const dels = [];
    const adds = [];
    const flush = () => {
      const k = Math.max(dels.length, adds.length);
      for (let t = 0; t < k; t++) {
        const l = dels[t] ?? null;
        const r = adds[t] ?? null;
        rows.push({ left: l, right: r, kind: l !== null && r !== null ? 'change' : l !== null ? 'del' : 'add' });
      }
      dels.length = 0;
      adds.length = 0;
    };
    while (i < n || j < m) {
      if (i < n && j < m && xm[i] === ym[j]) {
        flush();
        rows.push({ left: xm[i], right: ym[j], kind: 'same' });
        i++;
        j++;
      } else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) adds.push(ym[j++]);
      else dels.push(xm[i++]);
    }
    flush();
  }
  x.slice(x.length - tail).forEach((l) => rows.push({ left: l, right: l, kind: 'same' }));
  return rows;
}

/** Where a JSON.parse error is: `{line, column, message}`. */
export function jsonErrorAt(text, err) {
  const msg = err.message || String(err);
  const lc = /line (\d+) column (\d+)/.exec(msg);
  if (lc) return { line: Number(lc[1]), column: Number(lc[2]), message: msg };
  const pos = /position (\d+)/.exec(msg);
  let at = pos ? Number(pos[1]) : text.length;
  const before = text.slice(0, at).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1, message: msg };
}
