#!/usr/bin/env node
// Prints the CID that `ipfs add -r --cid-version=1 --raw-leaves PATH` gives, computed by js-ipfs's
// ipfs-unixfs-importer: an implementation independent of the Rust one in crates/lilypad-results,
// used by its tests as a reference.
//
// usage: node cid.mjs PATH     (PATH: a file or a directory; prints one CID and a newline)
//
// The options spell out what `ipfs add` (Kubo) does by default, so a change of the importer's own
// defaults cannot change the answer: CIDv1, raw leaves, 256 KiB fixed-size chunks, a balanced DAG
// of at most 174 links per node, a single-chunk file is its own raw leaf, directories become HAMT
// shards only above 256 KiB of links (name + CID bytes), no mode or mtime recorded. Symbolic links
// are stored as UnixFS symlinks, not followed, as `ipfs add -r` does.
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'
import * as fs from 'node:fs'
import * as path from 'node:path'

const OPTIONS = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  shardSplitThresholdBytes: 262144,
  shardSplitStrategy: 'links-bytes'
}

function * entries (root, rel) {
  const full = path.join(root, rel)
  const stat = fs.lstatSync(full)
  if (stat.isSymbolicLink()) {
    yield { path: rel, link: fs.readlinkSync(full) }
  } else if (stat.isDirectory()) {
    yield { path: rel }
    for (const name of fs.readdirSync(full).sort()) {
      yield * entries(root, rel === '' ? name : `${rel}/${name}`)
    }
  } else if (stat.isFile()) {
    yield { path: rel, content: fs.createReadStream(full, { highWaterMark: 262144 }) }
  } else {
    throw new Error(`${full}: not a file, directory or symbolic link`)
  }
}

async function main () {
  const target = process.argv[2]
  if (target === undefined) {
    console.error('usage: node cid.mjs PATH (a file or a directory)')
    process.exit(2)
  }
  const stat = fs.lstatSync(target)
  const blockstore = new MemoryBlockstore()
  let source
  let options = OPTIONS
  if (stat.isDirectory()) {
    // The directory's contents, wrapped: the root is the directory itself, as with `ipfs add -r`.
    source = [...entries(target, '')].filter((e) => e.path !== '')
    options = { ...OPTIONS, wrapWithDirectory: true }
  } else {
    source = [{ content: fs.createReadStream(target, { highWaterMark: 262144 }) }]
  }
  let last
  for await (const entry of importer(source, blockstore, options)) {
    last = entry
  }
  if (last === undefined) {
    // An empty directory: wrapping nothing yields nothing, so import it on its own.
    for await (const entry of importer([{ path: 'empty' }], blockstore, OPTIONS)) {
      last = entry
    }
  }
  process.stdout.write(`${last.cid.toString()}\n`)
}

main().catch((err) => {
  console.error(`cid.mjs: ${err.message}`)
  process.exit(1)
})
