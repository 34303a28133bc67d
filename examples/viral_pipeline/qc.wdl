version 1.1

# Per-sample QC sub-workflow for the toy viral pipeline: read statistics, seed-and-extend
# "alignment" against the reference (exact seed match with grep), a per-position pileup,
# and a one-row QC report with a PASS/FAIL verdict.
# Everything runs with bash + coreutils/grep/awk (POSIX awk; mawk is fine).

workflow sample_qc {
  meta {
    description: "Read stats, seed alignment, pileup and a QC verdict for one sample"
  }

  input {
    String sample
    File reads
    File reference
    Int seed_length = 16
    Int min_reads = 10
    Float min_coverage = 0.8
  }

  call read_stats {
    input:
      sample = sample,
      reads = reads
  }

  call seed_align {
    input:
      sample = sample,
      reads = reads,
      reference = reference,
      seed_length = seed_length
  }

  Boolean enough_reads = read_stats.n_reads >= min_reads
  Boolean enough_coverage = seed_align.coverage_fraction >= min_coverage
  String verdict = if !enough_reads then "FAIL_LOW_READS"
    else if !enough_coverage then "FAIL_LOW_COVERAGE"
    else "PASS"

  call qc_report {
    input:
      sample = sample,
      verdict = verdict,
      n_reads = read_stats.n_reads,
      mean_read_length = read_stats.mean_read_length,
      gc_percent = read_stats.gc_percent,
      mean_base_quality = read_stats.mean_base_quality,
      mapped_reads = seed_align.mapped_reads,
      coverage_fraction = seed_align.coverage_fraction,
      mean_depth = seed_align.mean_depth
  }

  output {
    Boolean passed = verdict == "PASS"
    String qc_verdict = verdict
    Int n_reads = read_stats.n_reads
    Float mean_read_length = read_stats.mean_read_length
    Float gc_percent = read_stats.gc_percent
    Int mapped_reads = seed_align.mapped_reads
    Float coverage_fraction = seed_align.coverage_fraction
    Float mean_depth = seed_align.mean_depth
    File pileup = seed_align.pileup
    File hits = seed_align.hits
    File report = qc_report.report
  }
}

task read_stats {
  input {
    String sample
    File reads
  }

  command <<<
    set -euo pipefail
    # FASTQ: 4 lines per record; line 2 = sequence, line 4 = Phred+33 qualities
    awk -v sample="~{sample}" '
      BEGIN { for (i = 33; i < 127; i++) phred[sprintf("%c", i)] = i - 33 }
      NR % 4 == 2 {
        n++
        len = length($0); bases += len
        if (minlen == "" || len < minlen) minlen = len
        if (len > maxlen) maxlen = len
        s = toupper($0); gc += gsub(/[GC]/, "", s)
      }
      NR % 4 == 0 { for (i = 1; i <= length($0); i++) { q += phred[substr($0, i, 1)]; nq++ } }
      END {
        if (n == 0) { minlen = 0; bases = 1; nq = 1 }
        printf "%d\n", n > "n_reads.txt"
        printf "%.2f\n", (n ? bases / n : 0) > "mean_len.txt"
        printf "%.2f\n", 100 * gc / bases > "gc.txt"
        printf "%.2f\n", q / nq > "mean_q.txt"
        printf "sample\treads\tbases\tmin_len\tmax_len\n%s\t%d\t%d\t%d\t%d\n", \
          sample, n, (n ? bases : 0), minlen, maxlen > "read_stats.tsv"
      }' "~{reads}"
  >>>

  output {
    Int n_reads = read_int("n_reads.txt")
    Float mean_read_length = read_float("mean_len.txt")
    Float gc_percent = read_float("gc.txt")
    Float mean_base_quality = read_float("mean_q.txt")
    File stats = "read_stats.tsv"
  }

  runtime {
    docker: "ubuntu:22.04"
    cpu: 1
    memory: "1 GiB"
  }
}

task seed_align {
  input {
    String sample
    File reads
    File reference
    Int seed_length = 16
  }

  command <<<
    set -euo pipefail
    # reference -> one upper-case line, so grep -b byte offsets are genome coordinates
    grep -v '^>' "~{reference}" | tr -d '\r\n' | tr 'acgtn' 'ACGTN' > ref.seq
    contig=$(head -n 1 "~{reference}" | sed 's/^>//; s/[[:space:]].*//')
    awk 'NR % 4 == 1 { id = substr($1, 2) } NR % 4 == 2 { print id "\t" toupper($0) }' \
      "~{reads}" > reads.tsv

    # place each read by exact match of its first ~{seed_length} bases (forward strand only)
    : > hits.tsv
    while IFS=$'\t' read -r id seq; do
      seed=${seq:0:~{seed_length}}
      [ ${#seed} -eq ~{seed_length} ] || continue
      offset=$(grep -o -b -F -- "$seed" ref.seq | head -n 1 | cut -d: -f1 || true)
      if [ -n "$offset" ]; then
        printf '%s\t%d\t%s\n' "$id" $((offset + 1)) "$seq" >> hits.tsv
      fi
    done < reads.tsv
    wc -l < hits.tsv | tr -d ' ' > mapped.txt

    # pileup: per reference position, depth and A/C/G/T counts of the placed reads
    awk -v contig="$contig" '
      NR == FNR { ref = $0; next }
      {
        pos = $2; seq = $3
        for (i = 1; i <= length(seq); i++) {
          p = pos + i - 1
          if (p > length(ref)) break
          depth[p]++; cnt[p, substr(seq, i, 1)]++
        }
      }
      END {
        L = length(ref)
        print "contig\tpos\tref\tdepth\tA\tC\tG\tT" > "pileup.tsv"
        for (p = 1; p <= L; p++) {
          d = depth[p] + 0; total += d; if (d > 0) covered++
          printf "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\n", contig, p, substr(ref, p, 1), d,
            cnt[p, "A"], cnt[p, "C"], cnt[p, "G"], cnt[p, "T"] > "pileup.tsv"
        }
        printf "%.4f\n", (L ? covered / L : 0) > "coverage.txt"
        printf "%.2f\n", (L ? total / L : 0) > "mean_depth.txt"
      }' ref.seq hits.tsv
    mv hits.tsv "~{sample}.hits.tsv"
    mv pileup.tsv "~{sample}.pileup.tsv"
  >>>

  output {
    Int mapped_reads = read_int("mapped.txt")
    Float coverage_fraction = read_float("coverage.txt")
    Float mean_depth = read_float("mean_depth.txt")
    File hits = "~{sample}.hits.tsv"
    File pileup = "~{sample}.pileup.tsv"
  }

  runtime {
    docker: "ubuntu:22.04"
    cpu: 1
    memory: "1 GiB"
  }
}

task qc_report {
  input {
    String sample
    String verdict
    Int n_reads
    Float mean_read_length
    Float gc_percent
    Float mean_base_quality
    Int mapped_reads
    Float coverage_fraction
    Float mean_depth
  }

  command <<<
    set -euo pipefail
    # WDL renders Floats with 6 decimals; re-format them for the report
    awk -v sample="~{sample}" -v verdict="~{verdict}" -v n=~{n_reads} -v m=~{mapped_reads} \
        -v len=~{mean_read_length} -v gc=~{gc_percent} -v q=~{mean_base_quality} \
        -v cov=~{coverage_fraction} -v depth=~{mean_depth} 'BEGIN {
      OFS = "\t"
      print "sample", "qc_verdict", "reads", "mapped", "pct_mapped", "mean_len", "gc_pct",
        "mean_q", "coverage", "mean_depth"
      printf "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.4f\t%.2f\n", sample, verdict, n, m,
        (n ? 100 * m / n : 0), len, gc, q, cov, depth
    }' > "~{sample}.qc.tsv"
  >>>

  output {
    File report = "~{sample}.qc.tsv"
  }

  runtime {
    docker: "ubuntu:22.04"
    cpu: 1
    memory: "1 GiB"
  }
}
