// Small, pure formatting helpers for the UI. No DOM, no API.

export function basename(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

export function dirname(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i <= 0 ? p.slice(0, i + 1) : p.slice(0, i);
}

export function bytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** "1:05", "12:30", "1:02:03" — or "—" when unknown. */
export function duration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? h + ':' : ''}${mm}:${String(r).padStart(2, '0')}`;
}

export function ms(n: number | null | undefined): string {
  if (n == null) return '—';
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10000 ? 1 : 0)} s`;
}

export function dims(w: number | null | undefined, h: number | null | undefined): string {
  return w && h ? `${w} × ${h}` : '—';
}

export function megapixels(w: number | null | undefined, h: number | null | undefined): string {
  if (!w || !h) return '';
  const mp = (w * h) / 1e6;
  return `${mp < 0.1 ? mp.toFixed(2) : mp < 10 ? mp.toFixed(1) : Math.round(mp)} MP`;
}

export function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

export function when(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function shortDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleDateString(undefined, sameYear ? { month: 'short', day: 'numeric' } : { year: 'numeric', month: 'short', day: 'numeric' });
}

export function percent(x: number): string {
  return `${Math.round(Math.max(0, Math.min(1, x)) * 100)}%`;
}

export function metricValue(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 4 : 2);
  if (typeof v === 'string' || typeof v === 'boolean') return String(v);
  if (v == null) return '—';
  return JSON.stringify(v);
}

/** Paths from a drop: file:// URIs (file managers put them in text/uri-list) or plain absolute paths. */
export function pathsFromText(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('file://')) {
      try {
        const u = new URL(line);
        let p = decodeURIComponent(u.pathname);
        if (/^\/[A-Za-z]:\//.test(p)) p = p.slice(1); // file:///C:/x -> C:/x
        out.push(p);
      } catch { /* not a URL: ignore the line */ }
    } else if (line.startsWith('/') || /^[A-Za-z]:[\\/]/.test(line)) {
      out.push(line);
    }
  }
  return out;
}

/** Preview of the output naming template for one example photo. */
export function namingPreview(template: string, vars: { name: string; ext: string; scale: number; model: string; seed: number }): string {
  const date = new Date().toISOString().slice(0, 10);
  const map: Record<string, string> = {
    name: vars.name, ext: vars.ext, scale: String(vars.scale), model: vars.model, seed: String(vars.seed), date,
  };
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in map ? map[k] : m));
}
