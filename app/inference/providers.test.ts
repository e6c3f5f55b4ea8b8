import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { candidates, listed, providerOrder } from './providers.ts';

describe('execution providers', () => {
  it('tries the accelerators each platform can have, CPU last', () => {
    assert.deepEqual(candidates('linux'), ['cuda', 'cpu']);
    assert.deepEqual(candidates('win32'), ['cuda', 'dml', 'cpu']);
    assert.deepEqual(candidates('darwin'), ['coreml', 'cpu']);
  });
  it('a forced provider is tried alone; auto only tries what is installed here', () => {
    assert.deepEqual(providerOrder('cpu'), ['cpu']);
    assert.deepEqual(providerOrder('cuda'), ['cuda']);
    const auto = providerOrder('auto');
    assert.equal(auto[auto.length - 1], 'cpu');
    const have = listed();
    assert.ok(have.includes('cpu'));
    for (const p of auto) assert.ok(p === 'cpu' || have.includes(p), `${p} is installed`);
  });
});
