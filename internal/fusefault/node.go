package fusefault

import (
	"context"
	"os"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node whose operations pass the rules first and are
// recorded for the power cut.
type node struct {
	fs.LoopbackNode
	fs  *FS
	gen *mountGen
}

// WrapChild makes the loopback's new nodes nodes of the layer, of the
// same mount.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	ln, ok := ops.(*fs.LoopbackNode)
	if !ok {
		return ops
	}
	return &node{LoopbackNode: fs.LoopbackNode{RootData: ln.RootData}, fs: n.fs, gen: n.gen}
}

func (n *node) rel() string { return n.Path(nil) }

func (n *node) child(name string) string {
	if p := n.rel(); p != "" {
		return p + "/" + name
	}
	return name
}

func (n *node) backingPath(rel string) string {
	return n.RootData.Path + "/" + rel
}

// fileOf returns the record of ino, creating it (call with fs.mu held).
func (f *FS) fileOf(ino uint64, backing string) *fileState {
	st := f.files[ino]
	if st == nil {
		st = &fileState{backing: backing}
		f.files[ino] = st
	}
	return st
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	rel := n.rel()
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.fs.check(n.gen, Truncate, rel); errno != 0 {
			return nil, 0, errno
		}
	}
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		n.fs.mu.Lock()
		n.fs.fileOf(n.StableAttr().Ino, n.backingPath(rel)).resized = true
		n.fs.mu.Unlock()
	}
	return &file{lf: fh.(*fs.LoopbackFile), n: n}, fl, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	rel := n.child(name)
	if errno := n.fs.check(n.gen, Create, rel); errno != 0 {
		return nil, nil, 0, errno
	}
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	ino := in.StableAttr().Ino
	n.fs.mu.Lock()
	n.fs.live[rel] = ino
	n.fs.nsDirty = true
	st := n.fs.fileOf(ino, n.backingPath(rel))
	st.backing = n.backingPath(rel)
	n.fs.mu.Unlock()
	return in, &file{lf: fh.(*fs.LoopbackFile), n: in.Operations().(*node)}, fl, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	rel := n.child(name)
	if errno := n.fs.check(n.gen, Create, rel); errno != 0 {
		return nil, errno
	}
	in, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno != 0 {
		return nil, errno
	}
	n.fs.mu.Lock()
	n.fs.live[rel] = 0
	n.fs.nsDirty = true
	n.fs.mu.Unlock()
	return in, 0
}

// forget drops rel, and what is under it, from the live namespace (call
// with fs.mu held).
func (f *FS) forget(rel string) {
	for p := range f.live {
		if p == rel || strings.HasPrefix(p, rel+"/") {
			delete(f.live, p)
		}
	}
	f.nsDirty = true
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, name, n.LoopbackNode.Unlink)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, name, n.LoopbackNode.Rmdir)
}

// remove is Unlink and Rmdir: the Unlink rules decide, then the loopback
// removes the name, and what was under it is forgotten.
func (n *node) remove(ctx context.Context, name string, rm func(context.Context, string) syscall.Errno) syscall.Errno {
	rel := n.child(name)
	if errno := n.fs.check(n.gen, Unlink, rel); errno != 0 {
		return errno
	}
	if errno := rm(ctx, name); errno != 0 {
		return errno
	}
	n.fs.mu.Lock()
	n.fs.forget(rel)
	n.fs.mu.Unlock()
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	from := n.child(name)
	np, ok := newParent.(*node)
	if !ok || flags != 0 {
		return syscall.ENOTSUP // only plain renames within the layer
	}
	to := np.child(newName)
	if errno := n.fs.check(n.gen, Rename, from); errno != 0 {
		return errno
	}
	if errno := n.LoopbackNode.Rename(ctx, name, &np.LoopbackNode, newName, flags); errno != 0 {
		return errno
	}
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	moved := map[string]uint64{}
	for p, ino := range f.live {
		if p == from || strings.HasPrefix(p, from+"/") {
			moved[to+strings.TrimPrefix(p, from)] = ino
		}
	}
	f.forget(from)
	f.forget(to)
	for p, ino := range moved {
		f.live[p] = ino
		if st := f.files[ino]; st != nil && ino != 0 {
			st.backing = n.backingPath(p)
		}
	}
	return 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	rel := n.child(name)
	if errno := n.fs.check(n.gen, Create, rel); errno != 0 {
		return nil, errno
	}
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.ENOTSUP
	}
	in, errno := n.LoopbackNode.Link(ctx, &t.LoopbackNode, name, out)
	if errno != 0 {
		return nil, errno
	}
	n.fs.mu.Lock()
	n.fs.live[rel] = t.StableAttr().Ino
	n.fs.nsDirty = true
	n.fs.mu.Unlock()
	return in, 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP // not modelled by the power cut
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func unwrap(f fs.FileHandle) fs.FileHandle {
	if ff, ok := f.(*file); ok {
		return ff.lf
	}
	return f
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return n.LoopbackNode.Getattr(ctx, unwrap(f), out)
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	_, resize := in.GetSize()
	rel := n.rel()
	if resize {
		if errno := n.fs.check(n.gen, Truncate, rel); errno != 0 {
			return errno
		}
	}
	if errno := n.LoopbackNode.Setattr(ctx, unwrap(f), in, out); errno != 0 {
		return errno
	}
	if resize {
		n.fs.mu.Lock()
		n.fs.fileOf(n.StableAttr().Ino, n.backingPath(rel)).resized = true
		n.fs.mu.Unlock()
	}
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{h: h, n: n}, fl, 0
}

// dir is a directory handle whose fsync passes the rules and commits the
// namespace.
type dir struct {
	h fs.FileHandle
	n *node
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.h.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.h.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	d.h.(fs.FileReleasedirer).Releasedir(ctx, flags)
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	f := d.n.fs
	if errno := f.check(d.n.gen, FsyncDir, d.n.rel()); errno != 0 {
		return errno
	}
	if errno := d.h.(fs.FileFsyncdirer).Fsyncdir(ctx, flags); errno != 0 {
		return errno
	}
	f.mu.Lock()
	f.commitNames()
	f.mu.Unlock()
	return 0
}

// commitNames makes the live namespace durable, as a journal commit does
// (call with fs.mu held).
func (f *FS) commitNames() {
	if f.nsDirty {
		f.durable = maps(f.live)
		f.nsDirty = false
	}
}

// file is an open file whose writes and fsyncs pass the rules and are
// recorded for the power cut. It does not offer its descriptor for FUSE
// passthrough, so that every read and write comes to the layer.
type file struct {
	lf *fs.LoopbackFile
	n  *node
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := f.n.fs.check(f.n.gen, Read, f.n.rel()); errno != 0 {
		return nil, errno
	}
	return f.lf.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	rel := f.n.rel()
	if errno := f.n.fs.check(f.n.gen, Write, rel); errno != 0 {
		return 0, errno
	}
	w, errno := f.lf.Write(ctx, data, off)
	if w > 0 {
		f.n.fs.mu.Lock()
		f.n.fs.fileOf(f.n.StableAttr().Ino, f.n.backingPath(rel)).wrote(off, int64(w))
		f.n.fs.mu.Unlock()
	}
	return w, errno
}

// wrote records a write of n bytes at off since the last fsync.
func (st *fileState) wrote(off, n int64) {
	st.dirty = addSpan(st.dirty, span{off, n})
	if len(st.torn) < maxTornSpans {
		st.torn = append(st.torn, span{off, n})
	}
}

// addSpan adds s to the sorted, disjoint spans ss, merging what touches.
func addSpan(ss []span, s span) []span {
	if k := len(ss); k > 0 && ss[k-1].off+ss[k-1].n <= s.off {
		if ss[k-1].off+ss[k-1].n == s.off {
			ss[k-1].n += s.n
			return ss
		}
		return append(ss, s) // the usual case: appending
	}
	out := ss[:0:0]
	lo, hi := s.off, s.off+s.n
	placed := false
	for _, x := range ss {
		switch {
		case x.off+x.n < lo:
			out = append(out, x)
		case x.off > hi:
			if !placed {
				out = append(out, span{lo, hi - lo})
				placed = true
			}
			out = append(out, x)
		default:
			lo, hi = min(lo, x.off), max(hi, x.off+x.n)
		}
	}
	if !placed {
		out = append(out, span{lo, hi - lo})
	}
	return out
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	rel := f.n.rel()
	fsys := f.n.fs
	if errno := fsys.check(f.n.gen, Fsync, rel); errno != 0 {
		return errno
	}
	if errno := f.lf.Fsync(ctx, flags); errno != 0 {
		return errno
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	ino := f.n.StableAttr().Ino
	st := fsys.fileOf(ino, f.n.backingPath(rel))
	if err := fsys.persist(ino, st, f.lf); err != nil {
		return fs.ToErrno(err)
	}
	fsys.commitNames()
	return 0
}

// persist makes what the file holds now its durable content (call with
// fs.mu held).
func (fsys *FS) persist(ino uint64, st *fileState, lf *fs.LoopbackFile) error {
	var a fuse.AttrOut
	if errno := lf.Getattr(context.Background(), &a); errno != 0 {
		return errno
	}
	size := int64(a.Size)
	src, err := os.Open(st.backing)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(fsys.shadowOf(ino), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	spans := st.dirty
	if !st.synced {
		if err := dst.Truncate(0); err != nil {
			dst.Close()
			return err
		}
		spans = dataRanges(src, size)
	}
	if err := copyRanges(src, dst, spans); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Truncate(size); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	st.synced, st.dirty, st.torn, st.resized = true, nil, nil, false
	return nil
}

func (f *file) Flush(ctx context.Context) syscall.Errno { return f.lf.Flush(ctx) }

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Getattr(ctx, out)
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	rel := f.n.rel()
	if errno := f.n.fs.check(f.n.gen, Truncate, rel); errno != 0 {
		return errno
	}
	if errno := f.lf.Allocate(ctx, off, size, mode); errno != 0 {
		return errno
	}
	f.n.fs.mu.Lock()
	f.n.fs.fileOf(f.n.StableAttr().Ino, f.n.backingPath(rel)).resized = true
	f.n.fs.mu.Unlock()
	return 0
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)

	_ fs.FileReaddirenter = (*dir)(nil)
	_ fs.FileFsyncdirer   = (*dir)(nil)
	_ fs.FileReleasedirer = (*dir)(nil)
	_ fs.FileSeekdirer    = (*dir)(nil)
)
