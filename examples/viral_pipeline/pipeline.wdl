version 1.1

# Toy viral sequencing pipeline (example for miniwdl-serverless `make demo`).
#
# For every sample: QC + seed alignment against a small reference (sub-workflow
# qc.sample_qc); samples that pass QC (and only when call_variants is true) get a
# majority-rule consensus sequence and a VCF-like variant list. Finally all per-sample
# reports are merged into one TSV.
# Tasks need only bash + coreutils/grep/awk/sed.

import "qc.wdl" as qc

workflow viral_pipeline {
  meta {
    description: "Toy viral amplicon pipeline: per-sample QC, seed alignment, consensus/variant calling, merged report"
  }

  parameter_meta {
    reference: "Reference genome FASTA (single contig)"
    sample_names: "Sample identifiers, parallel to sample_reads"
    sample_reads: "One single-end FASTQ per sample"
    call_variants: "Build consensus + call variants for samples that pass QC"
    min_coverage: "Minimum fraction of the reference covered by >= 1 read for a sample to pass QC"
    min_depth: "Consensus positions with lower depth become N"
  }

  input {
    File reference
    Array[String] sample_names
    Array[File] sample_reads
    Boolean call_variants = true
    Float min_coverage = 0.8
    Int min_reads = 10
    Int min_depth = 1
    Float min_allele_fraction = 0.6
    String run_label = "viral-demo"
  }

  Int n_samples = length(sample_names)

  scatter (sample in zip(sample_names, sample_reads)) {
    call qc.sample_qc {
      input:
        sample = sample.left,
        reads = sample.right,
        reference = reference,
        min_reads = min_reads,
        min_coverage = min_coverage
    }

    if (call_variants && sample_qc.passed) {
      call consensus {
        input:
          sample = sample.left,
          pileup = sample_qc.pileup,
          min_depth = min_depth,
          min_allele_fraction = min_allele_fraction
      }
    }

    # one row per sample for the merged report; "NA" where consensus was skipped
    Array[String] consensus_row = [
      sample.left,
      if defined(consensus.n_variants) then "called" else "skipped",
      if defined(consensus.n_variants) then "~{consensus.n_variants}" else "NA",
      if defined(consensus.n_ambiguous) then "~{consensus.n_ambiguous}" else "NA"
    ]
  }

  Array[File] consensus_fastas = select_all(consensus.fasta)
  Array[File] variant_vcfs = select_all(consensus.vcf)

  call merge_reports {
    input:
      run_label = run_label,
      qc_reports = sample_qc.report,
      consensus_rows = consensus_row,
      variant_vcfs = variant_vcfs
  }

  output {
    File summary_tsv = merge_reports.summary
    File variants_tsv = merge_reports.variants
    Array[File] consensus_fasta = consensus_fastas
    Array[File] variant_vcf = variant_vcfs
    Array[File] qc_reports = sample_qc.report
    Array[String] qc_verdicts = sample_qc.qc_verdict
    Array[Float] coverage_fraction = sample_qc.coverage_fraction
    Int samples_processed = n_samples
    Int samples_with_consensus = length(consensus_fastas)
    Int total_reads = merge_reports.total_reads
    Int total_variants = merge_reports.total_variants
    String best_sample = merge_reports.best_sample
  }
}

task consensus {
  input {
    String sample
    File pileup
    Int min_depth = 1
    Float min_allele_fraction = 0.6
  }

  command <<<
    set -euo pipefail
    # pileup columns: contig pos ref depth A C G T (header on line 1)
    awk -v sample="~{sample}" -v min_depth=~{min_depth} -v min_af=~{min_allele_fraction} '
      BEGIN {
        OFS = "\t"; split("A C G T", base, " ")
        print "##fileformat=VCFv4.2" > "variants.vcf"
        print "##source=viral_pipeline.consensus (toy majority-rule caller)" > "variants.vcf"
        print "##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Read depth\">" > "variants.vcf"
        print "##INFO=<ID=AF,Number=A,Type=Float,Description=\"Allele fraction\">" > "variants.vcf"
        print "#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO" > "variants.vcf"
      }
      NR == 1 { next }
      {
        contig = $1; pos = $2; ref = $3; depth = $4
        best = "N"; bestn = 0
        for (i = 1; i <= 4; i++) if ($(4 + i) > bestn) { bestn = $(4 + i); best = base[i] }
        if (depth < min_depth || bestn / depth < min_af) { call = "N"; ambiguous++ }
        else call = best
        seq = seq call
        if (call != "N" && call != ref) {
          variants++
          printf "%s\t%d\t.\t%s\t%s\t.\tPASS\tDP=%d;AF=%.2f\n", contig, pos, ref, call, depth,
            bestn / depth > "variants.vcf"
        }
      }
      END {
        printf ">%s_consensus\n", sample > "consensus.raw"
        print seq > "consensus.raw"
        printf "%d\n", variants > "n_variants.txt"
        printf "%d\n", ambiguous > "n_ambiguous.txt"
      }' "~{pileup}"
    # wrap the sequence at 70 columns like a typical FASTA
    { head -n 1 consensus.raw; tail -n +2 consensus.raw | fold -w 70; } > "~{sample}.consensus.fasta"
    mv variants.vcf "~{sample}.vcf"
  >>>

  output {
    File fasta = "~{sample}.consensus.fasta"
    File vcf = "~{sample}.vcf"
    Int n_variants = read_int("n_variants.txt")
    Int n_ambiguous = read_int("n_ambiguous.txt")
  }

  runtime {
    docker: "ubuntu:22.04"
    cpu: 1
    memory: "1 GiB"
  }
}

task merge_reports {
  input {
    String run_label
    Array[File] qc_reports
    Array[Array[String]] consensus_rows
    Array[File] variant_vcfs
  }

  command <<<
    set -euo pipefail
    # per-sample QC reports (header + one row each) -> one table, joined with consensus status
    first=1
    while read -r report; do
      if [ "$first" -eq 1 ]; then head -n 1 "$report"; first=0; fi
      tail -n +2 "$report"
    done < "~{write_lines(qc_reports)}" > qc_all.tsv

    awk -v run="~{run_label}" '
      BEGIN { OFS = "\t" }
      NR == FNR { status[$1] = $2; nvar[$1] = $3; namb[$1] = $4; next }
      FNR == 1 { print "run", $0, "consensus", "n_variants", "n_ambiguous"; next }
      {
        print run, $0, status[$1], nvar[$1], namb[$1]
        reads += $3
        if (best == "" || $9 > bestcov) { best = $1; bestcov = $9 }
      }
      END {
        printf "%d\n", reads > "total_reads.txt"
        print best > "best_sample.txt"
      }' "~{write_tsv(consensus_rows)}" qc_all.tsv > summary.tsv

    # all variant records, tagged with the sample they came from
    printf 'sample\tchrom\tpos\tref\talt\tinfo\n' > variants.tsv
    while read -r vcf; do
      sample=$(basename "$vcf" .vcf)
      grep -v '^#' "$vcf" | awk -v s="$sample" 'BEGIN { OFS = "\t" } { print s, $1, $2, $4, $5, $8 }' \
        >> variants.tsv || true
    done < "~{write_lines(variant_vcfs)}"
    echo $(( $(wc -l < variants.tsv) - 1 )) > total_variants.txt
  >>>

  output {
    File summary = "summary.tsv"
    File variants = "variants.tsv"
    Int total_reads = read_int("total_reads.txt")
    Int total_variants = read_int("total_variants.txt")
    String best_sample = read_string("best_sample.txt")
  }

  runtime {
    docker: "ubuntu:22.04"
    cpu: 1
    memory: "1 GiB"
  }
}
