version 1.0
workflow w {
  input { String path = "/data/run1/sample_A.fastq.gz" }
  output {
    String base = basename(path)
    String stem = basename(path, ".fastq.gz")
    String replaced = sub(path, "sample_([A-Z])", "S-$1")
    String dots = sub("a.b.c", "\\.", "_")
  }
}
