// ICC profile helpers: classify and describe embedded profiles.
//
// Policy (see enhance.ts): pixels go to the model as sRGB (sharp converts from the embedded
// profile on decode; CMYK without a profile uses libvips' built-in CMYK profile). On output,
// an RGB profile is converted back to and embedded; a grey profile is kept for grey output;
// a CMYK original is written as RGB with an sRGB profile, because PNG/WebP/AVIF cannot hold
// CMYK and a CMYK round trip would lose gamut for no gain.

export type IccKind = 'rgb' | 'gray' | 'cmyk' | 'lab' | 'other';

/** Colour space signature of an ICC profile (header bytes 16..19). */
export function iccKind(icc: Buffer | undefined): IccKind | null {
  if (!icc || icc.length < 132) return null;
  const sig = icc.toString('latin1', 16, 20);
  if (sig === 'RGB ') return 'rgb';
  if (sig === 'GRAY') return 'gray';
  if (sig === 'CMYK') return 'cmyk';
  if (sig === 'Lab ') return 'lab';
  return 'other';
}

/** The profile's description ('desc' tag, v2 text or v4 mluc), or undefined. */
export function iccDescription(icc: Buffer | undefined): string | undefined {
  if (!icc || icc.length < 132) return undefined;
  try {
    const count = icc.readUInt32BE(128);
    for (let i = 0; i < count && 132 + i * 12 + 12 <= icc.length; i++) {
      const e = 132 + i * 12;
      if (icc.toString('latin1', e, e + 4) !== 'desc') continue;
      const off = icc.readUInt32BE(e + 4);
      const type = icc.toString('latin1', off, off + 4);
      if (type === 'desc') {
        const n = icc.readUInt32BE(off + 8);
        return icc.toString('latin1', off + 12, off + 12 + n).replace(/\0+$/, '').trim() || undefined;
      }
      if (type === 'mluc') {
        const recSize = icc.readUInt32BE(off + 12);
        if (recSize < 12) return undefined;
        const len = icc.readUInt32BE(off + 16 + 4);
        const at = icc.readUInt32BE(off + 16 + 8);
        const be = icc.subarray(off + at, off + at + len);
        const le = Buffer.alloc(be.length);
        for (let k = 0; k + 1 < be.length; k += 2) { le[k] = be[k + 1]; le[k + 1] = be[k]; }
        return le.toString('utf16le').replace(/\0+$/, '').trim() || undefined;
      }
    }
  } catch { /* malformed profile: no description */ }
  return undefined;
}
