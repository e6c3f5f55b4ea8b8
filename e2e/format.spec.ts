// Pure helpers of the renderer (no browser needed): drop parsing, durations, naming preview.
import { test, expect } from '@playwright/test';
import { duration, namingPreview, pathsFromText, percent } from '../renderer/src/lib/format.ts';

test('pathsFromText reads file managers\' uri-lists and plain absolute paths', () => {
  const text = '# comment\r\nfile:///home/anna/My%20Photos/IMG_1.jpg\r\nfile:///C:/Users/a/b.png\n/srv/x.tif\nrelative.jpg\nhttps://example.com/a.jpg\n';
  expect(pathsFromText(text)).toEqual(['/home/anna/My Photos/IMG_1.jpg', 'C:/Users/a/b.png', '/srv/x.tif']);
  expect(pathsFromText('')).toEqual([]);
});

test('duration and percent format what the queue shows', () => {
  expect(duration(null)).toBe('—');
  expect(duration(5)).toBe('0:05');
  expect(duration(65)).toBe('1:05');
  expect(duration(3723)).toBe('1:02:03');
  expect(percent(0.444)).toBe('44%');
  expect(percent(2)).toBe('100%');
});

test('namingPreview fills known tokens and leaves unknown ones visible', () => {
  expect(namingPreview('{name}_x{scale}_{model}_{seed}{oops}', { name: 'IMG', ext: 'jpg', scale: 4, model: 'm', seed: 7 }))
    .toBe('IMG_x4_m_7{oops}');
});
