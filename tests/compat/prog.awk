# word frequencies, most frequent first (gawk: PROCINFO sorts the loop)
{ for (i = 1; i <= NF; i++) n[$i]++ }
END {
    PROCINFO["sorted_in"] = "@val_num_desc"
    for (w in n) printf "%-8s %d\n", w, n[w]
}
