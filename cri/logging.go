package cri

import "go.uber.org/zap/zapcore"

// debugCore logs every entry at debug level. cri-client logs at error
// level for outcomes that are normal to its callers (stopping a stopped
// container, a status of a removed one); the adapter returns those errors,
// classified, so its log only needs them for debugging.
type debugCore struct{ zapcore.Core }

func (c debugCore) With(fields []zapcore.Field) zapcore.Core { return debugCore{c.Core.With(fields)} }

func (c debugCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	ent.Level = zapcore.DebugLevel
	return c.Core.Check(ent, ce)
}
