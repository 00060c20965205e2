// Reference search results from Lucene itself, for tests/webshop_catalog.rs
// (`search_rankings_match_lucene_reference`). Run through make_reference.py; needs a JDK and
// Lucene 8 jars (Debian: apt-get install liblucene8-java). The analyzer is Anserini's
// DefaultEnglishAnalyzer (StandardTokenizer, EnglishPossessiveFilter, LowerCaseFilter,
// StopFilter with the classic English stop words, PorterStemFilter); similarity BM25(0.9, 0.4);
// queries are Anserini's bag of words (each distinct term boosted by its count); score ties
// are broken by document id, as Anserini does.
import java.io.*; import java.nio.file.*; import java.util.*;
import org.apache.lucene.analysis.*; import org.apache.lucene.analysis.standard.*;
import org.apache.lucene.analysis.en.*; 
import org.apache.lucene.analysis.tokenattributes.*;
import org.apache.lucene.document.*; import org.apache.lucene.index.*; import org.apache.lucene.search.*;
import org.apache.lucene.search.similarities.*; import org.apache.lucene.store.*;
public class Ref {
  static Analyzer an = new Analyzer() {
    protected TokenStreamComponents createComponents(String f) {
      Tokenizer src = new StandardTokenizer();
      TokenStream r = new EnglishPossessiveFilter(src);
      r = new LowerCaseFilter(r);
      r = new StopFilter(r, EnglishAnalyzer.ENGLISH_STOP_WORDS_SET);
      r = new PorterStemFilter(r);
      return new TokenStreamComponents(src, r);
    }
  };
  static List<String> analyze(String t) throws IOException {
    List<String> out = new ArrayList<>();
    try (TokenStream ts = an.tokenStream("contents", t)) {
      CharTermAttribute a = ts.addAttribute(CharTermAttribute.class); ts.reset();
      while (ts.incrementToken()) out.add(a.toString()); ts.end(); }
    return out;
  }
  static String dec(String b) { return new String(Base64.getDecoder().decode(b), java.nio.charset.StandardCharsets.UTF_8); }
  public static void main(String[] args) throws Exception {
    List<String> docs = Files.readAllLines(Paths.get(args[0]));
    PrintWriter tok = new PrintWriter(new FileWriter(args[2]));
    Directory dir = new ByteBuffersDirectory();
    IndexWriterConfig cfg = new IndexWriterConfig(an); cfg.setSimilarity(new BM25Similarity(0.9f, 0.4f));
    IndexWriter w = new IndexWriter(dir, cfg);
    for (String line : docs) { String[] p = line.split("\t"); String text = dec(p[1]);
      tok.println(String.join(" ", analyze(text)));
      Document d = new Document(); d.add(new StringField("id", p[0], Field.Store.YES));
      d.add(new SortedDocValuesField("id", new org.apache.lucene.util.BytesRef(p[0])));
      d.add(new TextField("contents", text, Field.Store.NO)); w.addDocument(d); }
    w.close(); tok.close();
    IndexSearcher s = new IndexSearcher(DirectoryReader.open(dir)); s.setSimilarity(new BM25Similarity(0.9f, 0.4f));
    PrintWriter out = new PrintWriter(new FileWriter(args[3]));
    for (String q : Files.readAllLines(Paths.get(args[1]))) { q = dec(q);
      Map<String,Integer> c = new LinkedHashMap<>(); for (String t : analyze(q)) c.merge(t, 1, Integer::sum);
      BooleanQuery.Builder b = new BooleanQuery.Builder();
      for (Map.Entry<String,Integer> e : c.entrySet()) b.add(new BoostQuery(new TermQuery(new Term("contents", e.getKey())), (float) e.getValue()), BooleanClause.Occur.SHOULD);
      TopDocs td = s.search(b.build(), 50, new Sort(SortField.FIELD_SCORE, new SortField("id", SortField.Type.STRING)), true);
      StringBuilder sb = new StringBuilder();
      for (ScoreDoc sd : td.scoreDocs) sb.append(s.doc(sd.doc).get("id")).append(' ');
      out.println(sb.toString().trim()); }
    out.close();
  }
}
