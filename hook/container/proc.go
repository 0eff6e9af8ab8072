package container

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// ProcessAlive reports whether pid still runs and is the process that was
// recorded (same start time; 0 is unknown: any process of that pid). A pid
// of 0 or less is unknown: alive. A zombie has ended: dead, as runc sees it.
func ProcessAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return true
	}
	state, s, err := readStat(pid)
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return start == 0 || s == start
}

// ProcessStart is field 22 of /proc/PID/stat: the start time in clock ticks
// after boot, which with the pid names one process.
func ProcessStart(pid int) (uint64, error) {
	_, start, err := readStat(pid)
	return start, err
}

// readStat reads the state (field 3) and start time (field 22) of
// /proc/PID/stat.
func readStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("bad /proc stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}
