// Keyboard helpers shared by the views. Shortcuts are single keys (Lightroom-style), so they
// must stay quiet while the user types in a field or a dialog is open.

export function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  if (!t) return false;
  const tag = t.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT' || t.isContentEditable) return true;
  if (tag === 'INPUT') {
    const type = (t as HTMLInputElement).type;
    return !['checkbox', 'radio', 'range', 'button', 'submit'].includes(type);
  }
  return false;
}

/** True when the event should be handled as a plain single-key shortcut. */
export function plainKey(e: KeyboardEvent): boolean {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return false;
  if (isTyping(e)) return false;
  return !document.querySelector('[role="dialog"][aria-modal="true"]');
}

export interface Shortcut { keys: string[]; what: string }
export interface ShortcutGroup { title: string; items: Shortcut[] }

export const SHORTCUTS: ShortcutGroup[] = [
  {
    title: 'Everywhere',
    items: [
      { keys: ['L'], what: 'Library' },
      { keys: ['C'], what: 'Compare' },
      { keys: ['B'], what: 'Batch' },
      { keys: ['M'], what: 'Models' },
      { keys: ['T'], what: 'Training' },
      { keys: [','], what: 'Settings' },
      { keys: ['E'], what: 'Enhance a photo…' },
      { keys: ['?'], what: 'This list' },
      { keys: ['Esc'], what: 'Close a dialog' },
    ],
  },
  {
    title: 'Library',
    items: [
      { keys: ['/'], what: 'Search' },
      { keys: ['←', '→', '↑', '↓'], what: 'Move the selection' },
      { keys: ['Enter'], what: 'Open in Compare' },
      { keys: ['R'], what: 'Reveal the result in its folder' },
      { keys: ['Del'], what: 'Delete the result (never the original)' },
    ],
  },
  {
    title: 'Compare',
    items: [
      { keys: ['0'], what: 'Fit' },
      { keys: ['1'], what: '100% (one image pixel per screen pixel)' },
      { keys: ['2'], what: '200%' },
      { keys: ['4'], what: '400%' },
      { keys: ['+', '−'], what: 'Zoom in / out' },
      { keys: ['X'], what: 'Flip A and B' },
      { keys: ['S'], what: 'Slider / side by side / single' },
      { keys: ['[', ']'], what: 'Previous / next variation' },
      { keys: ['←', '→', '↑', '↓'], what: 'Pan' },
      { keys: ['Esc'], what: 'Back to the Library' },
    ],
  },
  {
    title: 'Batch',
    items: [
      { keys: ['A'], what: 'Add files…' },
      { keys: ['F'], what: 'Add a folder…' },
      { keys: ['Ctrl', 'Enter'], what: 'Start the batch' },
      { keys: ['P'], what: 'Pause / resume the running job' },
    ],
  },
];
