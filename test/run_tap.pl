#!/usr/bin/perl
# Run TAP test scripts and count their assertions for scripts/run-tests.
#
#   perl test/run_tap.pl COUNTS_FILE t/*.pl
#
# The test scripts find their modules through PERL5LIB.
# Prints the usual per-script report and writes "PASSED FAILED" to
# COUNTS_FILE.  A script that exits non-zero, dies, or runs a different
# number of tests than it planned counts as one more failure, even when
# none of its assertions failed.
use strict;
use warnings;
use TAP::Harness;

my $counts_file = shift @ARGV or die "usage: run_tap.pl COUNTS_FILE TEST...\n";
my @tests = grep { -f $_ } @ARGV;

my $harness = TAP::Harness->new({
	verbosity => 0,
	timer     => 1,
	color     => 0,
});

my ($passed, $failed) = (0, 0);
if (@tests)
{
	my $agg = $harness->runtests(@tests);
	for my $desc ($agg->descriptions)
	{
		my ($parser) = $agg->parsers($desc);
		my $ok  = scalar($parser->passed);
		my $bad = scalar($parser->failed);
		$passed += $ok;
		$failed += $bad;
		$failed += 1
		  if $bad == 0
		  && ($parser->has_problems || $parser->exit != 0 || $parser->wait != 0);
	}
}

open(my $fh, '>', $counts_file) or die "could not write $counts_file: $!\n";
print $fh "$passed $failed\n";
close($fh);
exit($failed ? 1 : 0);
