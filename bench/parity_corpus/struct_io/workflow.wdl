version 1.1
struct Sample { String id  File reads  Int? depth }
workflow w {
  input { Array[Sample] samples }
  scatter (s in samples) {
    call count { input: s = s }
  }
  output { Array[Sample] annotated = count.out }
}
task count {
  input { Sample s }
  command <<< wc -l < ~{s.reads} >>>
  output { Sample out = Sample { id: s.id, reads: s.reads, depth: read_int(stdout()) } }
}
