use strict; use warnings;
my %n; while (<STDIN>) { $n{$_}++ for split; }
printf "%s %d\n", $_, $n{$_} for sort keys %n;
