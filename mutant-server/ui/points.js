// Decodes a points frame (kind 4, PROTOCOL.md "Kind 4, points") into typed
// columns. The fixed-width columns are read as views of the answer's bytes,
// without a copy; strings through one TextDecoder.
'use strict';

const FRAME_MAGIC = [0x4d, 0x55, 0x54, 0x46]; // "MUTF"
const FRAME_KIND_POINTS = 4;
const NO_CLASS = 0xffffffff;

function decodePoints(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const fail = (reason) => {
    throw new Error(`malformed points frame: ${reason}`);
  };
  if (bytes.length < 16) fail('shorter than its header');
  if (FRAME_MAGIC.some((byte, index) => bytes[index] !== byte)) fail('no "MUTF" magic');
  if (view.getUint16(4, true) !== 1) fail(`version ${view.getUint16(4, true)}`);
  if (view.getUint16(6, true) !== FRAME_KIND_POINTS) fail(`kind ${view.getUint16(6, true)}`);
  const nPoints = view.getUint32(8, true);
  const nComponents = view.getUint32(12, true);
  if (![0, 2, 3].includes(nComponents)) fail(`${nComponents} components`);
  let offset = 16;
  const fixedBytes = nPoints * (4 * nComponents + 4 + 4 + 4 + 1);
  if (offset + fixedBytes > bytes.length) fail(`${nPoints} points do not fit`);
  const coordinates = new Float32Array(buffer, offset, nPoints * nComponents);
  offset += 4 * nPoints * nComponents;
  const scores = new Float32Array(buffer, offset, nPoints);
  offset += 4 * nPoints;
  const labels = new Uint32Array(buffer, offset, nPoints);
  offset += 4 * nPoints;
  const predictions = new Uint32Array(buffer, offset, nPoints);
  offset += 4 * nPoints;
  const flagged = new Uint8Array(buffer, offset, nPoints);
  offset += nPoints;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const readString = () => {
    if (offset + 4 > bytes.length) fail('a string length runs past the end');
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > bytes.length) fail('a string runs past the end');
    const text = decoder.decode(bytes.subarray(offset, offset + length));
    offset += length;
    return text;
  };
  if (offset + 4 > bytes.length) fail('no class count');
  const nClasses = view.getUint32(offset, true);
  offset += 4;
  const classes = [];
  for (let index = 0; index < nClasses; index += 1) classes.push(readString());
  const ids = new Array(nPoints);
  for (let index = 0; index < nPoints; index += 1) ids[index] = readString();
  if (offset !== bytes.length) fail(`${bytes.length - offset} bytes after the ids`);
  const className = (code) => (code === NO_CLASS ? null : classes[code] ?? null);
  return { nPoints, nComponents, coordinates, scores, labels, predictions, flagged, classes, ids, className };
}

globalThis.decodePoints = decodePoints;
globalThis.NO_CLASS = NO_CLASS;
