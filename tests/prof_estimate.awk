# SPDX-License-Identifier: MIT
#
# prof_estimate.awk -- the heap profiler's estimates, per function, read from
# a profile file without google-pprof (tests/prof.sh). The format and the
# estimator are src/prof/prof_dump.c's: gperftools' heap_v2 text, one record
# per (stack, block size), each scaled by 1 / (1 - exp(-size / rate)).
#
#   awk -v exe=PATH -f prof_estimate.awk ELF HEAPFILE
#
# exe    the program's path as /proc/self/maps names it (realpath)
# ELF    what the script gathered from the program with readelf and nm:
#          load OFFSET VADDR FILESZ     a PT_LOAD segment (hex)
#          sym ADDR SIZE NAME           a function (hex)
#
# A record goes to the function of its first address (the return address
# in malloc's caller, minus 1): the program's own function when the address
# maps into exe, else the basename of the file it maps into, else "?".
# Prints
#   rate R                             the header's sampling rate
#   format ok | format bad: WHY        the header's sums and each record's
#                                      sizes agree, as the contract says
#   site NAME INUSE ALLOC              estimated bytes in use and ever allocated
#   records N                          records read
# Addresses are parsed as doubles: exact below 2^53, which user space is.

function hex(h,    v, i) {
    h = tolower(h)
    sub(/^0x/, "", h)
    v = 0
    for (i = 1; i <= length(h); i++)
        v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
    return v
}

function bad(why) {
    if (format == "")
        format = why
}

# Estimated true bytes of n sampled blocks of b bytes in all.
function scaled(n, b) {
    if (n == 0)
        return 0
    return b / (1 - exp(-(b / n) / rate))
}

function name_of(a,    i, off, v, base) {
    for (i = 1; i <= nmaps; i++)
        if (a >= mstart[i] && a < mend[i])
            break
    if (i > nmaps)
        return "?"
    if (mpath[i] != exe) {
        base = mpath[i]
        sub(/.*\//, "", base)
        return base == "" ? "?" : base
    }
    off = a - mstart[i] + moff[i]
    for (i = 1; i <= nloads; i++)
        if (off >= loff[i] && off < loff[i] + lsize[i])
            break
    if (i > nloads)
        return "?"
    v = off - loff[i] + lvaddr[i]
    for (i = 1; i <= nsyms; i++)
        if (v >= saddr[i] && v < saddr[i] + ssize[i])
            return sname[i]
    return "?"
}

FILENAME == ARGV[1] {
    if ($1 == "load") {
        nloads++
        loff[nloads] = hex($2); lvaddr[nloads] = hex($3); lsize[nloads] = hex($4)
    } else if ($1 == "sym") {
        nsyms++
        saddr[nsyms] = hex($2); ssize[nsyms] = hex($3); sname[nsyms] = $4
        sub(/\..*/, "", sname[nsyms])          # keep_forty.cold is keep_forty
    }
    next
}

FNR == 1 {
    if ($0 !~ /^heap profile: *[0-9]+: *[0-9]+ \[ *[0-9]+: *[0-9]+\] @ heap_v2\/[0-9]+$/)
        bad("header: " $0)
    line = $0
    sub(/.*heap_v2\//, "", line)
    rate = line + 0
    if (rate <= 0) {
        bad("no rate")
        rate = 524288
    }
    line = $0
    sub(/^heap profile:/, "", line)
    gsub(/[\[\]:@]/, " ", line)
    split(line, h, " ")
    H1 = h[1]; HB1 = h[2]; H2 = h[3]; HB2 = h[4]
    next
}

/^MAPPED_LIBRARIES:/ { maps = 1; next }

maps {
    if (split($1, r, "-") != 2)
        next
    nmaps++
    mstart[nmaps] = hex(r[1]); mend[nmaps] = hex(r[2]); moff[nmaps] = hex($3)
    mpath[nmaps] = NF >= 6 ? $6 : ""
    next
}

/^ *[0-9]+: *[0-9]+ \[ *[0-9]+: *[0-9]+\] @/ {
    line = $0
    sub(/@.*/, "", line)
    gsub(/[\[\]:]/, " ", line)
    split(line, f, " ")
    nrec++
    n1[nrec] = f[1]; b1[nrec] = f[2]; n2[nrec] = f[3]; b2[nrec] = f[4]
    pc[nrec] = $0
    sub(/.*@ */, "", pc[nrec])
    sub(/ .*/, "", pc[nrec])
    if (pc[nrec] !~ /^0x[0-9a-fA-F]+$/)
        bad("record " nrec " has no address")
    if (f[3] + 0 < f[1] + 0)
        bad("record " nrec ": more in use than allocated")
    if ((f[1] > 0 && f[2] % f[1] != 0) || (f[3] > 0 && f[4] % f[3] != 0))
        bad("record " nrec ": bytes not a multiple of the count")
    if (f[1] > 0 && f[3] > 0 && f[2] * f[3] != f[4] * f[1])
        bad("record " nrec ": two block sizes")
    S1 += f[1]; SB1 += f[2]; S2 += f[3]; SB2 += f[4]
    next
}

/^$/ { next }

!maps { bad("stray line: " $0) }

END {
    if (nmaps == 0)
        bad("no MAPPED_LIBRARIES")
    if (S1 != H1 || SB1 != HB1 || S2 != H2 || SB2 != HB2)
        bad("header " H1 ":" HB1 " [" H2 ":" HB2 "], records sum to " S1 ":" SB1 " [" S2 ":" SB2 "]")
    print "rate " rate
    print format == "" ? "format ok" : "format bad: " format
    for (i = 1; i <= nrec; i++) {
        s = name_of(hex(pc[i]) - 1)
        inuse[s] += scaled(n1[i], b1[i])
        alloc[s] += scaled(n2[i], b2[i])
    }
    for (s in inuse)
        printf "site %s %.0f %.0f\n", s, inuse[s], alloc[s]
    print "records " nrec + 0
}
